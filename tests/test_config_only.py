"""What a user does by editing config/ alone: a new source, a vintage lacking a measure;
and what `make run` prints when a file is bad (one message per file, no log flood)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from pipeline.__main__ import main
from pipeline.settings import PACKAGE_ROOT
from tests.helpers import edit_workbook, find_row, header_columns

NEW_SOURCE = """
  permanences_rpe:
    title: "Permanences des relais (source ajoutée par configuration)"
    producer: CAF
    classification: confidentiel-convention-caf
    articles: [art-2, art-4]
    file_regex: '(?i)^permanences_rpe_\\d{4}\\.csv$'
    blank_means: secret_at_source
    measures:
      permanences: {label: "Nombre de permanences"}
      familles_recues: {label: "Nombre de familles reçues"}
    rules:
      - permanences <= familles_recues
    columns:
      Code commune: code_zone
      Nb permanences: permanences
      Nb familles reçues: familles_recues
    vintages:
      2020: {file: permanences_rpe_2020.csv, encoding: cp1252}
"""

# bca 2017 without its AEEH 3-5 column: the measure declared absent for that year
PARTIAL = ("      2017:\n        file: BCA2017.xlsx\n",
           "      2017:\n        file: BCA2017.xlsx\n        absent: [aeeh_3_5_ans]\n")


def _run(project, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAF_PROJECT_DIR": str(project), "DAGSTER_HOME": str(home), "PYTHONPATH": str(PACKAGE_ROOT)}
    for var in ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "pipeline", "run"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def configured_run(tmp_path_factory, sample_dir):
    """A project whose config/ (and only config/) declares a new source and a partial
    vintage, with the sample and the new source's file in raw/, built by `python -m
    pipeline run` in a fresh process."""
    root = tmp_path_factory.mktemp("configured")
    shutil.copytree(PACKAGE_ROOT / "config", root / "config")
    shutil.copytree(sample_dir, root / "raw")
    catalog = root / "config" / "catalog.yaml"
    text = catalog.read_text(encoding="utf-8")
    assert text.count(PARTIAL[0]) == 1
    catalog.write_text(text.replace(*PARTIAL) + NEW_SOURCE, encoding="utf-8")
    territory = (root / "config" / "territory.csv").read_text(encoding="utf-8").splitlines()[1:]
    lines = ["Code commune;Nb permanences;Nb familles reçues"]
    for i, line in enumerate(territory):
        code = line.split(";")[0]
        lines.append(f"{code};{i % 7 + 1};{'' if i % 11 == 3 else 10 + i}")  # some secret blanks
    (root / "raw" / "permanences_rpe_2020.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    (root / "home").mkdir()
    shutil.copy2(PACKAGE_ROOT / ".dagster_home" / "dagster.yaml", root / "home")
    result = _run(root, root / "home")
    return root, result


def _query(root, sql):
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def test_a_new_source_goes_in_by_config_alone(configured_run):
    root, result = configured_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: raw_permanences_rpe, stg_permanences_rpe [2020]" in result.stdout
    rows = {(code, measure): (value, flag) for code, measure, value, flag in _query(
        root, "SELECT zone_code, measure, value, flag FROM staging.permanences_rpe WHERE year = 2020")}
    assert len(rows) == 200
    first = (root / "config" / "territory.csv").read_text(encoding="utf-8").splitlines()[1].split(";")[0]
    assert rows[(first, "permanences")] == (1.0, "reported") and rows[(first, "familles_recues")] == (10.0, "reported")
    fourth = (root / "config" / "territory.csv").read_text(encoding="utf-8").splitlines()[4].split(";")[0]
    assert rows[(fourth, "familles_recues")] == (None, "secret_at_source")
    # its file is in the ingest ledger like any other
    assert _query(root, "SELECT count(*) FROM lineage.ingest_ledger WHERE source = 'permanences_rpe'")[0][0] == 1


def test_a_measure_declared_absent_is_not_available_downstream(configured_run):
    root, result = configured_run
    assert result.returncode == 0
    flags = _query(root, "SELECT DISTINCT flag FROM staging.bca WHERE year = 2017 AND measure = 'aeeh_3_5_ans'")
    assert flags == [("missing",)]
    statuses = _query(root, "SELECT status, count(*), count(value) FROM published.indicators "
                            "WHERE indicator = 'enfants_moins_6_ans_aeeh' AND year = 2017 GROUP BY status")
    # no value at all (never a zero, never a failure): not_available, or masked where the
    # zone itself is under the policy's minimum of allocataires (article 4 masks the whole zone)
    assert {s for s, _, _ in statuses} <= {"not_available", "masked"} and "not_available" in {s for s, _, _ in statuses}
    assert sum(v for _, _, v in statuses) == 0
    # the other years are published as usual
    assert _query(root, "SELECT count(value) FROM published.indicators "
                        "WHERE indicator = 'enfants_moins_6_ans_aeeh' AND year = 2018")[0][0] > 0


def test_validate_names_a_declared_absent_measure_and_an_undeclared_missing_one(project, sample_dir, capsys):
    bca = project / "raw" / "BCA2017.xlsx"
    shutil.copy2(sample_dir / "BCA2017.xlsx", bca)
    catalog = project / "config" / "catalog.yaml"
    catalog.write_text(catalog.read_text(encoding="utf-8").replace(*PARTIAL), encoding="utf-8")
    assert main(["validate", str(bca)]) == 0
    out = capsys.readouterr().out
    assert "measures absent from this vintage" in out
    assert "Nombre d'enfants de 3 à 5 ans avec AEEH (aeeh_3_5_ans)" in out

    # the column gone from the file, the catalog not told: the measure is named, and the way out
    def drop(ws):
        ws.cell(row=6, column=header_columns(ws, 6)["AEEH_3A5"]).value = "AUTRE"  # header row 6
    edit_workbook(bca, "BCA2017", drop)
    catalog.write_text(catalog.read_text(encoding="utf-8").replace("        absent: [aeeh_3_5_ans]\n", ""),
                       encoding="utf-8")
    assert main(["validate", str(bca)]) == 1
    err = capsys.readouterr().err
    assert "'AEEH_3A5' (Nombre d'enfants de 3 à 5 ans avec AEEH, aeeh_3_5_ans)" in err
    assert "list it under the vintage's `absent`" in err


def test_a_failed_run_prints_one_message_per_bad_file_and_no_log_flood(sample_project, capsys):
    from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

    # the project's instance configuration, as `make run` uses it (telemetry off: no banner)
    shutil.copy2(PACKAGE_ROOT / ".dagster_home" / "dagster.yaml", os.environ["DAGSTER_HOME"])

    def negative(ws):
        ws.cell(row=find_row(ws, "62023"), column=header_columns(ws, 6)["NB_Allocataires"]).value = -5
    edit_workbook(sample_project / "raw" / "BCA2017.xlsx", "BCA2017", negative)
    (sample_project / "raw" / "base_scolarisation_2018.csv").write_bytes(b"x")
    assert main(["run"]) == 1
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Stack Trace" not in output and "Traceback" not in output and " - ERROR - " not in output
    assert "dagster._core" not in output
    for name in ("BCA2017.xlsx", "base_scolarisation_2018.csv"):
        assert output.count(f"  {name}: ") == 1, output
        assert output.count(f"make validate FILES=raw/{name}") == 1
    assert "column 'NB_Allocataires': must be ≥ 0" in output
    assert len(output.splitlines()) < 25, output
    # the logs still go to the instance
    failures = DagsterInstance.get().get_event_records(EventRecordsFilter(event_type=DagsterEventType.STEP_FAILURE))
    assert len(failures) == 2


def test_a_measures_label_is_declared_once_in_the_catalog(project):
    """The reports' formulas name a measure by its label in the catalog: editing it there
    changes the reports, with no second copy in config/report.yaml."""
    import yaml

    from pipeline.reports.context import load_report_config
    from pipeline.settings import project_paths

    assert "measure_labels" not in yaml.safe_load((project / "config" / "report.yaml").read_text(encoding="utf-8"))
    paths = project_paths()
    label = "Nombre de places d'accueil formel du jeune enfant"
    assert load_report_config(paths).measure_labels["places_accueil"] == label
    catalog = project / "config" / "catalog.yaml"
    text = catalog.read_text(encoding="utf-8")
    catalog.write_text(text.replace(label, "Places d'accueil (EAJE, AM...)"),
                       encoding="utf-8")
    assert load_report_config(paths).measure_labels["places_accueil"] == "Places d'accueil (EAJE, AM...)"
