"""Wiring: the ingest assets on the whole sample, checked against the generator's truth."""

from __future__ import annotations

import shutil

import dagster as dg
import pandas as pd
import pytest

from pipeline.catalog import load_catalog
from pipeline.sample import generate, sample_truth
from tests.conftest import SEED
from tests.helpers import materialize, query


def ingest_everything() -> list[dg.ExecuteInJobResult]:
    instance = dg.DagsterInstance.ephemeral()
    results = []
    for source in load_catalog().sources.values():
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
    merged = truth.merge(staged, on=["source", "year", "level", "zone_code", "measure"], how="left", suffixes=("_truth", ""))
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
    for source in catalog.sources.values():
        for year in source.years:
            communes = query(
                sample_project,
                f"SELECT count(DISTINCT zone_code) FROM staging.{source.id} WHERE year = {year} AND level = 'commune'",
            )[0][0]
            assert communes == 100, (source.id, year)
            assert query(sample_project, f"SELECT count(*) FROM raw.{source.id}_{year}")[0][0] >= 100
    ledger = query(sample_project, "SELECT DISTINCT file_name, sha256, size_bytes FROM lineage.ingest_ledger")
    assert {name for name, _, _ in ledger} == {p.name for p in (sample_project / "raw").iterdir() if p.name != "README.md"}
    assert all(len(sha) == 64 for _, sha, _ in ledger)
    check_against_truth(sample_project, sample_truth(SEED, with_published=True))

    # technical rows are dropped and counted; the schema check is recorded as passed
    result = results[0]
    materialization = result.asset_materializations_for_node("stg_bca")[0]
    assert materialization.metadata["technical_rows_dropped"].value == 2
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


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
    truth = sample_truth(SEED)
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
