"""Wiring: the ingest assets on the whole sample, checked against the generator's truth."""

from __future__ import annotations

import os

import dagster as dg
import pandas as pd
import pytest

from pipeline.catalog import load_catalog
from pipeline.sample import generate, sample_truth, sampled_sources
from tests.conftest import SEED
from tests.helpers import failure_message, materialize, query


def ingest_everything() -> list[dg.ExecuteInJobResult]:
    instance = dg.DagsterInstance.ephemeral()
    results = []
    for source in sampled_sources(load_catalog()):
        for year in source.years:
            results.append(materialize([f"raw_{source.id}", f"stg_{source.id}"], str(year), instance))
    return results


def staging(project) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect(str(project / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        tables = [t for (t,) in con.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'"
        ).fetchall()]
        return pd.concat([con.sql(f"SELECT * FROM staging.{t}").df() for t in tables], ignore_index=True)
    finally:
        con.close()


def check_against_truth(project, truth: pd.DataFrame) -> None:
    staged = staging(project)
    merged = truth.merge(staged, on=["source", "year", "level", "zone_code", "measure"], how="left",
                         suffixes=("_truth", ""))
    assert merged["flag"].notna().all(), merged[merged["flag"].isna()].head()
    published = merged[merged["published"]]
    # every value the file shows is read exactly (thousands separators, decimal commas...)
    assert (published["flag"] == "reported").all()
    assert ((published["value"] - published["value_truth"]).abs() < 1e-6).all()
    # every blank of a CAF file is a secret, never a zero
    hidden = merged[~merged["published"]]
    caf = hidden["source"].isin(["bca", "bcecpaj", "places_a_creer"])
    assert (hidden.loc[caf, "flag"] == "secret_at_source").all()
    assert hidden["value"].isna().all()
    assert len(hidden.loc[caf]) > 0  # the sample does exercise secrecy


def test_ingest_of_the_whole_sample(sample_project):
    results = ingest_everything()
    assert all(r.success for r in results)

    catalog = load_catalog()
    for source in sampled_sources(catalog):
        for year in source.years:
            communes = query(
                sample_project,
                f"SELECT count(DISTINCT zone_code) FROM staging.{source.id} WHERE year = {year} AND level = 'commune'",
            )[0][0]
            assert communes == 100, (source.id, year)
            assert query(sample_project, f"SELECT count(*) FROM raw.{source.id}_{year}")[0][0] >= 100
    ledger = query(sample_project, "SELECT DISTINCT file_name, sha256, size_bytes FROM lineage.ingest_ledger")
    received = {p.name for p in (sample_project / "raw").iterdir() if p.name != "README.md"}
    assert {name for name, _, _ in ledger} == received
    assert all(len(sha) == 64 for _, sha, _ in ledger)
    check_against_truth(sample_project, sample_truth(SEED, with_published=True))

    # technical rows are dropped and counted; the schema check is recorded as passed
    result = results[0]
    materialization = result.asset_materializations_for_node("stg_bca")[0]
    assert materialization.metadata["technical_rows_dropped"].value == 2
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


@pytest.mark.integration
def test_bundle_workbook_gives_the_same_tables(project, tmp_path):
    generate(project / "raw", seed=SEED, bundle=True)
    assert any(p.name.startswith("convention") for p in (project / "raw").iterdir())
    results = ingest_everything()
    assert all(r.success for r in results)
    check_against_truth(project, sample_truth(SEED, with_published=True))


def test_rerun_of_a_partition_replaces_only_that_year(sample_project):
    assert materialize(["raw_bca", "stg_bca"], "2017").success
    assert materialize(["raw_bca", "stg_bca"], "2018").success
    before = query(sample_project, "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year")
    assert materialize(["raw_bca", "stg_bca"], "2018").success
    after = query(sample_project, "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year")
    assert before == after and [y for y, *_ in after] == [2017, 2018]
    assert query(sample_project, "SELECT count(*) FROM lineage.ingest_ledger WHERE source = 'bca'")[0][0] == 2


def test_no_cell_value_in_dagster_metadata(sample_project):
    """Metadata carry counts, hashes and schemas only: no value of the files."""
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(["raw_bcecpaj", "stg_bcecpaj"], "2019", instance).success
    names = set(pd.read_csv(sample_project / "config" / "territory.csv", sep=";")["nom_commune"])
    records = [
        record
        for key in ("raw_bcecpaj", "stg_bcecpaj")
        for record in instance.fetch_materializations(dg.AssetKey(key), limit=10).records
    ]
    assert len(records) == 2
    text = " ".join(str(r.asset_materialization.metadata) for r in records)
    assert "Béthune" not in text and not any(name in text for name in names)
    assert "am_actifs_decembre" in text  # the measures' names are there, to show the scan looks


# ---- a run over several years (`python -m pipeline run`, a backfill from the UI) -----------------


def materialize_years(source: str, years: list[str], instance) -> dg.ExecuteInJobResult:
    """One run of the job `ingest_<source>` over `years`, as `python -m pipeline run` launches it."""
    from pipeline.launch import launch

    name = f"annees_{source}"
    instance.add_dynamic_partitions(name, [y for y in years if not instance.has_dynamic_partition(name, y)])
    launched = launch(f"ingest_{source}", instance, years)
    assert launched.label == f"raw_{source}, stg_{source} [{years[0]}...{years[-1]}: {len(years)} years]"
    return launched.result


BCA_YEARS = ["2017", "2018", "2019", "2020", "2021"]


def test_ingest_assets_take_all_their_years_in_one_run():
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    for source in load_catalog().sources.values():
        for key in (f"raw_{source.id}", f"stg_{source.id}"):
            node = graph.get(dg.AssetKey(key))
            assert node.partitions_def.name == f"annees_{source.id}"
            assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_one_run_over_several_years_writes_and_records_every_year(sample_project):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_years("bca", BCA_YEARS, instance)
    assert result.success, failure_message(result)
    assert len(instance.get_run_records()) == 1

    # one raw table, one ledger row and the staging rows of each year
    for year in BCA_YEARS:
        assert query(sample_project, f"SELECT count(*) FROM raw.bca_{year}")[0][0] >= 100
    ledger = query(sample_project, "SELECT year, file_name, run_id FROM lineage.ingest_ledger ORDER BY year")
    assert [(str(y), f) for y, f, _ in ledger] == [(y, f"BCA{y}.xlsx") for y in BCA_YEARS]
    assert {r for _, _, r in ledger} == {result.run_id}
    assert [str(y) for (y,) in query(sample_project, "SELECT DISTINCT year FROM staging.bca ORDER BY 1")] == BCA_YEARS

    # one materialization per asset and year, each with its own year's metadata; the UI shows every year
    for key in ("raw_bca", "stg_bca"):
        assert instance.get_materialized_partitions(dg.AssetKey(key)) == set(BCA_YEARS)
    raw_events = {m.partition: m.metadata for m in
                  (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
                  if m.asset_key == dg.AssetKey("raw_bca")}
    assert sorted(raw_events) == BCA_YEARS
    for year, metadata in raw_events.items():
        assert metadata["file"].value == f"BCA{year}.xlsx"
        assert metadata["dagster/table_name"].value == f"raw.bca_{year}"
    stg_events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
                  if e.event_specific_data.materialization.asset_key == dg.AssetKey("stg_bca")]
    assert sorted(m.partition for m in stg_events) == BCA_YEARS
    for m in stg_events:
        rows = query(sample_project, f"SELECT count(*) FROM staging.bca WHERE year = {m.partition}")[0][0]
        assert m.metadata["dagster/row_count"].value == rows
        assert m.metadata["technical_rows_dropped"].value == 2

    # the blocking schema check ran once for the run, over every year
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("schema_valide", True)]
    assert checks[0].metadata["years"].value == [int(y) for y in BCA_YEARS]
    assert checks[0].metadata["rules_broken"].value == 0

    # a run of one year (the file sensor's) afterwards replaces that year only
    before = query(sample_project, "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year")
    assert materialize(["raw_bca", "stg_bca"], "2019", instance).success
    per_year = "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year"
    assert query(sample_project, per_year) == before
    assert query(sample_project, "SELECT count(*) FROM lineage.ingest_ledger")[0][0] == len(BCA_YEARS)


def _negative_count(path) -> None:
    from tests.helpers import edit_workbook, find_row, header_columns

    vintage = load_catalog().vintage("bca", 2019)

    def edit(ws):
        ws.cell(row=find_row(ws, "62119"), column=header_columns(ws, vintage.header_row)["NB_Allocataires"]).value = -12

    edit_workbook(path, vintage.sheet, edit)


def _snapshot(project) -> dict:
    return {
        "staging": query(project, "SELECT year, count(*), sum(value) FROM staging.bca GROUP BY year ORDER BY year"),
        "raw": [query(project, f"SELECT count(*) FROM raw.bca_{y}")[0][0] for y in BCA_YEARS],
        "ledger": query(project, "SELECT year, sha256, ingested_at, run_id FROM lineage.ingest_ledger ORDER BY year"),
    }


@pytest.mark.parametrize("bad", ["breaks its schema", "cannot be read"])
def test_a_bad_year_fails_the_run_naming_its_file_and_keeps_the_last_good_tables(bad, sample_project):
    instance = dg.DagsterInstance.ephemeral()
    good = materialize_years("bca", BCA_YEARS, instance)
    assert good.success
    before = _snapshot(sample_project)
    events_before = {key: len(instance.fetch_materializations(dg.AssetKey(key), limit=100).records)
                     for key in ("raw_bca", "stg_bca")}

    path = sample_project / "raw" / "BCA2019.xlsx"
    if bad == "breaks its schema":
        _negative_count(path)
        expected = ["BCA2019.xlsx: ", "bca 2019", "column 'NB_Allocataires': must be ≥ 0, broken on 1 row"]
    else:
        path.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
        expected = ["BCA2019.xlsx: ", "is a PDF document"]
    result = materialize_years("bca", BCA_YEARS, instance)
    assert not result.success
    message = failure_message(result)
    assert all(text in message for text in expected), message
    assert "-12" not in message  # never a cell value
    assert "BCA2017" not in message and "BCA2021" not in message  # only the bad year is blamed

    after = _snapshot(sample_project)
    assert after["staging"] == before["staging"]  # no staging year written, the good ones included
    if bad == "cannot be read":  # nothing of the run written: raw tables and ledger as they were
        assert after == before
        raw_events = instance.fetch_materializations(dg.AssetKey("raw_bca"), limit=100).records
        assert len(raw_events) == events_before["raw_bca"]
    # the failed staging step recorded no materialization, for any year
    assert len(instance.fetch_materializations(dg.AssetKey("stg_bca"), limit=100).records) == events_before["stg_bca"]
    assert not result.get_asset_check_evaluations() or not any(c.passed for c in result.get_asset_check_evaluations())


def test_run_all_launches_the_jobs_of_the_definitions(sample_project, monkeypatch, capsys):
    """`python -m pipeline run`: the ingest job of each source with files (its years as a
    partition range), then the refresh job; never the destruction; one line per run."""
    from pipeline.__main__ import main
    from pipeline.definitions import defs
    from pipeline.launch import HOST_TAG, PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, PID_TAG

    launched = []

    class Done:
        success, run_id, all_events = True, "0" * 36, []

    def fake_execute(job, run_config=None, instance=None, partition_key=None, tags=None, **kwargs):
        launched.append((job.name, partition_key, dict(tags or {})))
        return Done()

    monkeypatch.setattr(dg.JobDefinition, "execute_in_process", fake_execute)
    assert main(["run"]) == 0
    output = capsys.readouterr().out
    catalog = load_catalog()
    sampled = sampled_sources(catalog)
    assert [name for name, _, _ in launched] == [f"ingest_{s.id}" for s in sampled] + ["refresh"]
    assert {job.name for job in defs.jobs} >= {name for name, _, _ in launched} | {"destruction"}
    for name, partition_key, tags in launched[:-1]:
        source = catalog.source(name.removeprefix("ingest_"))
        years = [str(y) for y in sorted(source.years)]
        if len(years) == 1:  # places_a_creer: one year, a plain one-partition run
            assert partition_key == years[0] and PARTITION_RANGE_START_TAG not in tags
            assert f"ok: raw_{source.id}, stg_{source.id} [{years[0]}] (run 00000000)" in output
        else:
            assert partition_key is None
            assert (tags[PARTITION_RANGE_START_TAG], tags[PARTITION_RANGE_END_TAG]) == (years[0], years[-1])
            assert f"ok: raw_{source.id}, stg_{source.id} [{years[0]}...{years[-1]}: {len(years)} years]" in output
    # the refresh job: the unpartitioned assets, in one run; every run says which process runs it
    assert launched[-1][1] is None and PARTITION_RANGE_START_TAG not in launched[-1][2]
    assert all(tags[PID_TAG] == str(os.getpid()) and HOST_TAG in tags for _, _, tags in launched)
    assert "ok: core_indicator_inputs, core_indicators, core_indicators_evolution, core_masking, out_indicators, " \
           "out_manifeste_conformite, out_rapport_excel, out_rapport_html (run 00000000)" in output


def test_run_all_stops_before_the_refresh_when_an_ingest_run_fails(sample_project, monkeypatch):
    from pipeline.launch import run_all

    launched = []

    class Result:
        run_id, all_events = "1" * 36, []

        def __init__(self, success):
            self.success = success

    def fake_execute(job, **kwargs):
        launched.append(job.name)
        return Result(job.name != "ingest_bca")

    monkeypatch.setattr(dg.JobDefinition, "execute_in_process", fake_execute)
    runs = list(run_all(dg.DagsterInstance.ephemeral()))
    assert [r.success for r in runs].count(False) == 1
    assert "ingest_bca" in launched and "refresh" not in launched and "destruction" not in launched
