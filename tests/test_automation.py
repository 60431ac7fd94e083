"""The file sensor, the year partitions that grow with the files, and the downstream refresh,
on the instance's two storages: SQLite (the default) and PostgreSQL (the server variant,
`pytest -m postgres`; tests/conftest.py starts a throw-away cluster)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from pipeline.defs.automation import raw_files_sensor
from pipeline.resources import ProjectResource, WarehouseResource
from pipeline.sample import generate
from tests.conftest import SEED
from tests.helpers import edit_workbook, find_row, materialize, query


def tick(instance, cursor=None) -> dg.SensorResult:
    root = os.environ["CAF_PROJECT_DIR"]  # the isolated project (tests/conftest.py)
    resources = {"project": ProjectResource(root=root),
                 "warehouse": WarehouseResource(path=str(Path(root) / "warehouse" / "warehouse.duckdb"))}
    return raw_files_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))


def requested(result) -> list[tuple[str, str]]:
    return sorted(
        (sorted(k.to_user_string() for k in r.asset_selection)[0].removeprefix("raw_"), r.partition_key)
        for r in result.run_requests or []
    )


def test_first_tick_asks_for_every_source_and_year_and_adds_the_years(sample_project, instance):
    result = tick(instance)
    runs = requested(result)
    assert ("bca", "2017") in runs and ("places_a_creer", "2020") in runs and ("couverture", "2019") in runs
    assert len(runs) == 5 + 5 + 4 + 4 + 3 + 1
    assert len({r.run_key for r in result.run_requests}) == len(runs)
    added = {req.partitions_def_name: set(req.partition_keys) for req in result.dynamic_partitions_requests}
    assert added["annees_bca"] == {"2017", "2018", "2019", "2020", "2021"}
    assert added["annees_naissances"] == {"2017", "2018", "2019", "2020"}
    # a workbook spanning years (BCECPAJ20: 2017-2020) maps onto one run per year
    bcecpaj = [r for r in result.run_requests if r.partition_key and "raw_bcecpaj" in str(r.asset_selection)]
    assert {r.tags["caf/fichier"] for r in bcecpaj} == {"BCECPAJ20.xlsx", "BCECPAJ21.xlsx"}


def test_same_files_twice_run_nothing_and_a_touched_file_is_not_a_new_one(sample_project, instance):
    first = tick(instance)
    second = tick(instance, first.cursor)
    assert not second.run_requests
    bca = sample_project / "raw" / "BCA2019.xlsx"
    os.utime(bca, (bca.stat().st_atime, bca.stat().st_mtime + 100))  # same content, newer time
    third = tick(instance, second.cursor)
    assert not third.run_requests


def test_replaced_file_runs_only_its_source_and_year(sample_project, instance):
    first = tick(instance)
    bca = sample_project / "raw" / "BCA2019.xlsx"
    edit_workbook(bca, "BCA2019", lambda ws: setattr(ws.cell(find_row(ws, "62119"), 3), "value", 4321))
    second = tick(instance, first.cursor)
    assert requested(second) == [("bca", "2019")]
    (request,) = second.run_requests
    assert request.tags["caf/raison"] == "replaced file"
    assert request.run_key not in {r.run_key for r in first.run_requests}


def test_file_for_an_unknown_year_is_reported_in_the_tick_and_runs_nothing(sample_project, instance):
    first = tick(instance)
    shutil.copy(sample_project / "raw" / "BCA2021.xlsx", sample_project / "raw" / "BCA2023.xlsx")
    second = tick(instance, first.cursor)
    assert not second.run_requests
    assert "BCA2023.xlsx" in second.skip_reason.skip_message
    assert "no vintage" in second.skip_reason.skip_message


def test_invalid_file_gives_one_failed_run_and_no_retry(sample_project, instance):
    first = tick(instance)
    bca = sample_project / "raw" / "BCA2018.xlsx"
    edit_workbook(bca, "BCA2018", lambda ws: setattr(ws.cell(find_row(ws, "62119"), 3), "value", -7))
    second = tick(instance, first.cursor)
    assert requested(second) == [("bca", "2018")]
    result = materialize(["raw_bca", "stg_bca"], "2018", instance)
    assert not result.success
    third = tick(instance, second.cursor)
    assert not third.run_requests  # the same bad file is not proposed again


def test_new_year_end_to_end(sample_project, instance):
    """A 2022 file arrives: the sensor adds the year, its run ingests it, earlier years stay
    untouched, and the automation asks for the refresh of everything downstream."""
    from pipeline.definitions import defs
    from tests.helpers import materialize_all

    assert not materialize_all(instance)
    cursor = tick(instance).cursor
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not instance.has_dynamic_partition("annees_bca", "2022")

    catalog = sample_project / "config" / "catalog.yaml"
    text = catalog.read_text(encoding="utf-8")
    vintage_2021 = text[text.index("      2021:\n        file: BCA2021.xlsx"):text.index("  bcecpaj:")]
    catalog.write_text(text.replace(vintage_2021, vintage_2021 + vintage_2021.replace("2021", "2022")),
                       encoding="utf-8")
    scratch = sample_project.parent / "scratch"
    generate(scratch, seed=SEED)
    shutil.copy(scratch / "BCA2022.xlsx", sample_project / "raw" / "BCA2022.xlsx")

    before = query(sample_project, "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year")
    result = tick(instance, cursor)
    assert requested(result) == [("bca", "2022")]
    (add,) = result.dynamic_partitions_requests
    instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    assert materialize(["raw_bca", "stg_bca"], "2022", instance).success
    after = query(sample_project, "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year")
    assert after[:-1] == before and after[-1][0] == 2022

    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
    wanted = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()
              if evaluation.get_num_requested(key)}
    assert {"core_indicator_inputs"} <= wanted
    assert not any(defs.resolve_asset_graph().get(dg.AssetKey(k)).group_name == "lifecycle" for k in wanted)


def test_sensor_refuses_new_files_once_the_study_is_closed(sample_project, instance):
    import datetime as dt

    from pipeline.study import set_study_status

    set_study_status("closed", dt.date(2026, 6, 30))
    result = tick(instance)
    assert not result.run_requests
    assert result.skip_reason.skip_message.startswith("ingest refused:")
    assert "closed" in result.skip_reason.skip_message


def test_weekly_check_revalidates_every_ingested_year_and_is_off_by_default(sample_project, instance):
    from pipeline.__main__ import register_years
    from pipeline.definitions import defs

    schedule = defs.get_schedule_def("verification_hebdomadaire")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # config/operations.yaml: enabled: false
    register_years(instance)
    import datetime as dt

    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 30, 6, 0),
                                        resources={"project": ProjectResource(root=str(sample_project))})
    requests = list(schedule(context))
    pairs = sorted((str(r.asset_selection[0].to_user_string()), r.partition_key) for r in requests)
    assert ("stg_bca", "2017") in pairs and ("stg_places_a_creer", "2020") in pairs
    assert len(pairs) == 5 + 5 + 4 + 4 + 3 + 1
    assert all(r.asset_selection[0].to_user_string().startswith("stg_") for r in requests)


def test_files_already_in_the_ledger_are_not_ingested_again(sample_project, instance):
    """`make run` ingested everything; the UI's sensor, looking at raw/ for the first time,
    asks for nothing but what the ledger does not hold."""
    assert materialize(["raw_bca", "stg_bca"], "2017", instance).success
    result = tick(instance)
    runs = requested(result)
    assert ("bca", "2017") not in runs and ("bca", "2018") in runs


def test_the_sensor_reads_the_folder_its_resource_names(sample_project, instance, tmp_path, monkeypatch):
    """The project comes from the resource, not from the environment read when it ticks."""
    monkeypatch.setenv("CAF_PROJECT_DIR", str(tmp_path))  # an empty folder: no raw/, no config/
    resources = {"project": ProjectResource(root=str(sample_project)),
                 "warehouse": WarehouseResource(path=str(sample_project / "warehouse" / "warehouse.duckdb"))}
    result = raw_files_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert ("bca", "2017") in requested(result)
