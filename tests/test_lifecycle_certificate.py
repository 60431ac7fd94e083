"""What the closing tells the operator and the CAF must be true (issue 26), as a user meets it
with `make destroy` on the sample: a residue scan with nothing to search for is NON VÉRIFIÉE,
never "aucune trace", and says why from what happened; the operator is named, never the
computer account alone; a refusal prints the refusal only; on PostgreSQL, a role without the
right to CHECKPOINT gets a certificate that says it was refused, not that it was done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from pipeline import lifecycle
from pipeline.lifecycle import load_study
from pipeline.settings import PACKAGE_ROOT
from tests.test_lifecycle import close_study, files_holding, persistent_instance

pytestmark = pytest.mark.integration

OPERATOR = "Jeanne Martin, Service Petite Enfance"


def make_destroy(*assignments: str) -> subprocess.CompletedProcess:
    """`make destroy` as the user types it (`-e`: the test's CAF_PROJECT_DIR and DAGSTER_HOME win
    over the Makefile's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPERATOR", "SENTINEL")}
    return subprocess.run(["make", "-e", "-s", "destroy", *assignments], cwd=PACKAGE_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def certificate(study_id: str) -> tuple[dict, str]:
    html_path, json_path = lifecycle.certificate_paths(study_id)
    return json.loads(json_path.read_text(encoding="utf-8")), html_path.read_text(encoding="utf-8")


def test_a_scan_with_nothing_to_search_for_is_not_verified_and_says_why(built_project):
    """The sample's texts are all public (commune names, codes): nothing can be derived, and
    without SENTINEL the scan can only look for copies of the files received."""
    persistent_instance()
    close_study()
    study_id = load_study().study_id
    received = sorted(p.name for p in (built_project / "raw").iterdir() if p.is_file())

    done = make_destroy(f"STUDY_ID={study_id}", f"OPERATOR={OPERATOR}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("done, NOT VERIFIED:") and "complete" not in done.stdout
    assert "SENTINEL=" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not [p for p in (built_project / "raw").rglob("*") if p.is_file()]  # destroyed all the same

    cert, page = certificate(study_id)
    scan = cert["controle_de_non_persistance"]
    assert cert["status"] == "NON VÉRIFIÉE"
    assert scan["clean"] is False and scan["conclusive"] is False and scan["verdict"] == "non concluant"
    assert scan["sentinels_given"] == scan["sentinels_derived"] == 0
    assert scan["copies_searched"] == len(received)  # what was searched: the files' fingerprints
    # why, from what happened: the raw tables were there, their texts are all public
    assert "figurent tous dans ce qui est public" in scan["no_value_reason"]
    assert "déjà été détruites" not in page and "les tables brutes étaient déjà détruites" not in page
    assert scan["not_checked"] and scan["not_checked"][0].startswith("le contenu des données")
    assert "aucune trace" not in page.split("<h2>1.")[0].lower()  # the banner
    assert "NON VÉRIFIÉE" in page and "Aucune occurrence trouvée" not in page
    assert "Ce qui n'a pas pu être vérifié" in page
    assert cert["operation"]["operateur_declare"] == OPERATOR and OPERATOR in page
    assert lifecycle.destruction_record(study_id)  # destroyed: ingest refused for good

    # verified afterwards with a value the operator knows: the certificate says so, and why it changed
    sentinel = "VERIF" + uuid.uuid4().hex[:12].upper()
    again = make_destroy(f"STUDY_ID={study_id}", "OPERATOR=Paul Durand, DPO", f"SENTINEL={sentinel}")
    assert again.returncode == 0 and again.stdout.startswith("ok:"), again.stdout + again.stderr[-2000:]
    assert sentinel not in again.stdout + again.stderr
    cert, page = certificate(study_id)
    assert cert["status"] == "TERMINÉE" and cert["controle_de_non_persistance"]["sentinels_given"] == 1
    assert cert["operation"]["operateur_declare"] == OPERATOR  # who asked for the destruction
    (check,) = cert["controle_de_non_persistance"]["verifications"]
    assert check["operator"] == "Paul Durand, DPO" and check["verdict"] == "aucune trace trouvée"
    assert files_holding(built_project, sentinel) == []  # the value given is nowhere, the journal included


def test_the_operator_is_required_and_a_refusal_prints_the_refusal_only(project):
    persistent_instance()
    study_id = load_study().study_id

    # an open study: the refusal, without a traceback nor the run's log
    open_study = make_destroy(f"STUDY_ID={study_id}", f"OPERATOR={OPERATOR}")
    assert open_study.returncode == 2
    lines = open_study.stderr.strip().splitlines()
    assert "Traceback" not in open_study.stderr + open_study.stdout and "dagster" not in open_study.stderr.lower()
    assert lines[0].startswith("FAILED: destruction of study") and "status is 'open'" in open_study.stderr
    assert len([line for line in lines if not line.startswith("make")]) <= 6, lines

    close_study()
    # without OPERATOR, make says what to give; the command refuses too (the UI's launchpad alike)
    missing = make_destroy(f"STUDY_ID={study_id}")
    assert missing.returncode == 2 and "OPERATOR is required" in missing.stderr
    env = {k: v for k, v in os.environ.items() if k != "OPERATOR"}
    direct = subprocess.run([sys.executable, "-m", "pipeline", "destroy", "--study-id", study_id],
                            cwd=PACKAGE_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert direct.returncode == 1 and "the operator is not named" in direct.stderr
    assert "Traceback" not in direct.stderr
    assert not lifecycle.journal_path(study_id).exists()  # nothing was started
    assert not lifecycle.certificate_paths(study_id)[1].exists()


@pytest.mark.postgres
def test_on_postgresql_a_refused_checkpoint_is_said_refused(project, pg_cluster, monkeypatch):
    """A role that owns its database but is not a superuser (what a DBA gives a server): VACUUM
    FULL is allowed, CHECKPOINT and the WAL switch are not. The certificate says what was
    done and what was refused, and lists the WAL among what could not be checked."""
    import dagster as dg

    role, password = f"caf_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    database = f"{role}_db"
    pg_cluster.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    pg_cluster.sql(f'CREATE DATABASE "{database}" OWNER {role}')
    for name, value in {**pg_cluster.environment(database), "DAGSTER_PG_USER": role,
                        "DAGSTER_PG_PASSWORD": password}.items():
        monkeypatch.setenv(name, value)
    home = Path(os.environ["DAGSTER_HOME"])
    config = yaml.safe_load((PACKAGE_ROOT / ".dagster_home" / "dagster.yaml").read_text(encoding="utf-8"))
    config["storage"] = yaml.safe_load((PACKAGE_ROOT / "deploy" / "dagster.postgres.yaml").read_text())["storage"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    try:
        with dg.DagsterInstance.get() as instance:
            instance.event_log_storage.set_concurrency_slots("warehouse", 1)
        sentinel = "PGROLE" + uuid.uuid4().hex[:12].upper()
        (project / "raw" / "envoi.csv").write_text(f"code;nom\n62119;{sentinel}\n", encoding="utf-8")
        close_study()
        study_id = load_study().study_id
        done = make_destroy(f"STUDY_ID={study_id}", f"OPERATOR={OPERATOR}", f"SENTINEL={sentinel}")
        assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stdout + done.stderr[-3000:]

        cert, page = certificate(study_id)
        pg = cert["detruit"]["dagster"]["postgresql"]
        assert pg["vacuum_full"] and pg["checkpoints"] == 0 and pg["wal_switches"] == 0
        assert any(r.startswith("CHECKPOINT:") for r in pg["refused"]), pg["refused"]
        method = cert["operation"]["methode"]["dagster"]
        assert "refusé par le serveur : CHECKPOINT" in method and "point(s) de contrôle" not in method
        assert "suivies d'un point de contrôle" not in page and "après VACUUM FULL, CHECKPOINT" not in page
        scan = cert["controle_de_non_persistance"]
        assert any("journal WAL" in x and "refusé" in x for x in scan["not_checked"]), scan["not_checked"]
        assert password not in page + json.dumps(cert)
    finally:
        pg_cluster.sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        pg_cluster.sql(f"DROP ROLE IF EXISTS {role}")


def test_after_the_destruction_make_run_writes_no_sample_and_make_destroy_leaves_no_file(sample_project):
    """`make run` on a destroyed study used to generate the 14 sample files in the emptied raw/
    (they looked like received CAF files), and a second `make destroy` said "complete" and left
    them. Now `make run` writes nothing and says why; a file that does come into raw/ after the
    destruction is destroyed by the next `make destroy`, which says so and lists it."""
    persistent_instance()
    close_study()
    study_id = load_study().study_id
    sentinel = "LATE" + uuid.uuid4().hex[:12].upper()
    assert make_destroy(f"STUDY_ID={study_id}", f"OPERATOR={OPERATOR}", f"SENTINEL={sentinel}").returncode == 0
    raw = sample_project / "raw"
    assert not [p for p in raw.rglob("*") if p.is_file()]
    before, _ = certificate(study_id)

    run = subprocess.run(["make", "-e", "-s", "run"], cwd=PACKAGE_ROOT, env=os.environ.copy(), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode != 0 and "no sample written" in run.stdout and "were destroyed" in run.stdout
    assert "nothing was run" in run.stderr
    assert not [p for p in raw.rglob("*") if p.is_file()]

    # a file dropped in raw/ all the same (by hand, a sync tool): the next make destroy destroys it
    (raw / "envoi-tardif").mkdir()
    late = raw / "envoi-tardif" / "BCA2021.xlsx"
    late.write_bytes(b"PK\x03\x04 not really a workbook, " + sentinel.encode())
    again = make_destroy(f"STUDY_ID={study_id}", f"OPERATOR={OPERATOR}", f"SENTINEL={sentinel}")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 file(s) found in raw/ since were destroyed too" in again.stdout and "no trace found" in again.stdout
    assert not raw.joinpath("envoi-tardif").exists() and files_holding(sample_project, sentinel) == []
    cert, page = certificate(study_id)
    (check,) = cert["controle_de_non_persistance"]["verifications"]
    assert [f["path"] for f in check["raw_files_destroyed"]] == ["raw/envoi-tardif/BCA2021.xlsx"]
    assert "raw/envoi-tardif/BCA2021.xlsx" in page
    assert cert["detruit"] == before["detruit"]  # what the destruction itself destroyed is unchanged
    # nothing new: the certificate already sent is not rewritten
    assert make_destroy(f"STUDY_ID={study_id}", f"OPERATOR={OPERATOR}", f"SENTINEL={sentinel}").returncode == 0
    assert certificate(study_id)[0] == cert
