"""The code location's structure: one `defs` per stage module, the jobs everything launches,
no import cycle, Dagster's private modules in one adapter only, the settings resource."""

import ast
import pkgutil
from pathlib import Path

import dagster as dg
import pytest

import pipeline.defs
import pipeline.resources as resources
from pipeline.resources import ProjectResource
from pipeline.settings import PACKAGE_ROOT

ADAPTER = PACKAGE_ROOT / "pipeline" / "lifecycle" / "dagster_storage.py"


def imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, at its top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_dagster_private_modules_only_in_the_storage_adapter():
    offenders = [
        f"{path.relative_to(PACKAGE_ROOT)}: {name}"
        for folder in ("pipeline", "schemas")
        for path in sorted((PACKAGE_ROOT / folder).rglob("*.py"))
        if path != ADAPTER
        for name in imported_modules(path)
        if name.startswith("dagster._") or (name.startswith("dagster_") and "._" in name)
    ]
    assert not offenders, offenders
    assert any(name.startswith("dagster._") for name in imported_modules(ADAPTER))  # the check looks


def test_no_stage_module_imports_the_definitions():
    """The manifest and the destruction get the graph as a resource: no import cycle."""
    folder = PACKAGE_ROOT / "pipeline" / "defs"
    offenders = [p.name for p in sorted(folder.glob("*.py")) if "pipeline.definitions" in imported_modules(p)]
    assert not offenders, offenders


def test_every_stage_module_declares_one_defs_and_definitions_merges_them_all():
    from pipeline import definitions

    modules = {m.name for m in pkgutil.iter_modules(pipeline.defs.__path__)}
    assert {stage.__name__.rsplit(".", 1)[-1] for stage in definitions.STAGES} == modules
    for stage in definitions.STAGES:
        assert isinstance(stage.defs, dg.Definitions), stage.__name__
    merged = {k for stage in definitions.STAGES for k in (a.key for a in stage.defs.assets or [])}
    assert merged == set(definitions.defs.resolve_asset_graph().get_all_asset_keys())


def test_the_jobs_of_the_definitions():
    from pipeline.catalog import load_catalog
    from pipeline.definitions import defs

    sources = list(load_catalog().sources)
    assert {job.name for job in defs.jobs} == {f"ingest_{s}" for s in sources} | {"refresh", "destruction", "release"}
    graph = defs.resolve_asset_graph()
    for source in sources:
        job = defs.resolve_job_def(f"ingest_{source}")
        assert job.asset_layer.selected_asset_keys == {dg.AssetKey(f"raw_{source}"), dg.AssetKey(f"stg_{source}")}
        assert job.partitions_def.name == f"annees_{source}"
    refresh = defs.resolve_job_def("refresh").asset_layer.selected_asset_keys
    assert {graph.get(k).group_name for k in refresh} == {"warehouse", "disclosure", "reports"}
    assert refresh == {k for k in graph.get_all_asset_keys() if graph.get(k).group_name not in ("raw", "staging")}
    # the release and the destruction are op jobs: no asset, so "Materialize all" never selects them
    for job_name, op in (("release", "record_release"), ("destruction", "study_data_destruction")):
        job = defs.resolve_job_def(job_name)
        assert job.asset_layer.selected_asset_keys == set() and [n.name for n in job.nodes] == [op]
    assert dg.AssetKey("study_data_destruction") not in graph.get_all_asset_keys()
    # the file sensor asks for the ingest jobs
    sensor = defs.resolve_sensor_def("raw_files_sensor")
    assert {target.job_name for target in sensor.targets} == {f"ingest_{s}" for s in sources}


def test_the_project_resource_reads_each_file_once_per_run(project, monkeypatch):
    """Two steps of a run share one reading of config/; the next run reads the file again
    (an edit of config/ between runs is seen)."""
    reads = []
    real = resources.load_study

    def counting(paths):
        reads.append(paths.study)
        return real(paths)

    monkeypatch.setattr(resources, "load_study", counting)

    @dg.asset
    def first(project: ProjectResource) -> str:
        return project.study().study_id

    @dg.asset
    def second(project: ProjectResource, first: str) -> str:
        assert project.study().study_id == first
        return first

    for run in (1, 2):
        result = dg.materialize([first, second], resources={"project": ProjectResource()})
        assert result.success and result.output_for_node("second").startswith("cabbalr")
        assert reads == [project / "config" / "study.yaml"] * run  # the test's project, from the environment


@pytest.mark.parametrize("field, expected", [("raw_dir", "/elsewhere/raw"), ("root", "/elsewhere")])
def test_the_project_resource_fields_override_the_environment(project, field, expected):
    paths = ProjectResource(**{field: expected}).paths
    assert paths.raw == Path("/elsewhere/raw")
    assert paths.config == (Path("/elsewhere/config") if field == "root" else project / "config")
