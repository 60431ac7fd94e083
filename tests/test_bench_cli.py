"""The benchmark dispatcher's command line and the throw-away project folders (no benchmark is run)."""

from __future__ import annotations

import os

import pytest

from bench.__main__ import benchmarks, parse
from bench._common import new_project
from pipeline.settings import project_paths


def test_every_benchmark_by_default_the_national_last():
    names = benchmarks()
    assert parse([], names) == [(n, []) for n in names]
    assert names[0] == "suite" and names[-1] == "national"


def test_options_go_to_the_benchmark_they_follow():
    names = benchmarks()
    assert parse(["national", "--communes", "300", "--no-write"], names) == [
        ("national", ["--communes", "300", "--no-write"])]
    assert parse(["suite", "--no-write", "national", "--communes", "300"], names) == [
        ("suite", ["--no-write"]), ("national", ["--communes", "300"])]
    assert parse(["excel_reading", "suite"], names) == [("excel_reading", []), ("suite", [])]
    with pytest.raises(SystemExit, match="is not a benchmark"):
        parse(["--communes", "300"], names)
    with pytest.raises(SystemExit, match="is not a benchmark"):
        parse(["nationale"], names)


def test_national_receives_its_options(monkeypatch):
    import sys

    import bench.national
    from bench.__main__ import main

    seen = []
    monkeypatch.setattr(bench.national, "main", lambda: seen.append(list(sys.argv)) or 0)
    assert main(["national", "--communes", "300", "--no-write"]) == 0
    assert seen == [["bench.national", "--communes", "300", "--no-write"]]


def test_project_folders_are_the_pipelines(tmp_path, monkeypatch):
    """A benchmark's project is where `project_paths()` puts it under the benchmark's environment,
    whatever the environment of the benchmark's own process."""
    monkeypatch.setenv("CAF_RAW_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("CAF_PROJECT_DIR", str(tmp_path / "other"))
    project = new_project(tmp_path / "france")
    env = project.env()
    assert env["CAF_PROJECT_DIR"] == str(project.root) and "CAF_RAW_DIR" not in env
    with monkeypatch.context() as m:
        for k in ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR"):
            m.delenv(k, raising=False)
        m.setenv("CAF_PROJECT_DIR", env["CAF_PROJECT_DIR"])
        expected = project_paths()
    assert project.paths() == expected
    assert (project.config, project.raw, project.warehouse) == (expected.config, expected.raw, expected.warehouse)
    assert project.raw == (tmp_path / "france" / "raw").resolve() and project.raw.is_dir()
    assert project.warehouse.parent.is_dir() and expected.reports.is_dir() and project.config.is_dir()
    # the caller's environment is left as it was
    assert os.environ["CAF_RAW_DIR"] == str(tmp_path / "elsewhere")
    assert os.environ["CAF_PROJECT_DIR"] == str(tmp_path / "other")
