"""Every file of config/ is read through a typed model: a misspelt key or a value of the
wrong type is refused with one message naming the file, the key and what was expected
(a misspelt `reader:` once left the disclosure policy's reader knowing nothing); the
checks between files hold; the JSON Schemas for editors are the models' own."""

from __future__ import annotations

import pytest

from pipeline.__main__ import main
from pipeline.config_models.project import FILES, SCHEMAS, check_config, schema_path, stale_schemas
from pipeline.disclosure.policy import PolicyError, parse_policy
from pipeline.settings import PACKAGE_ROOT, project_paths
from tests.test_disclosure import POLICY_TEXT


def edit(project, name: str, old: str, new: str) -> None:
    path = project / "config" / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def only_problem(project) -> str:
    problems = check_config(project_paths())
    assert len(problems) == 1, problems
    return problems[0]


def test_the_shipped_config_is_valid():
    assert check_config(project_paths()) == []


# (file, text, its typo, the dotted key named, the key suggested)
TYPOS = [
    ("disclosure.yaml", "\nreader:", "\nraeder:", "raeder", "reader"),
    ("disclosure.yaml", "zero_publishable: true", "zero_publishabel: true", "zero_publishabel", "zero_publishable"),
    ("disclosure.yaml", "max_rounds: 60", "max_round: 60", "protection.max_round", "max_rounds"),
    ("disclosure.yaml", "rate_decimals: 1", "rate_decimal: 1", "rate_decimal", "rate_decimals"),
    ("disclosure.yaml", "  earlier_releases: true", "  earlier_release: true", "reader.earlier_release",
     "earlier_releases"),
    ("catalog.yaml", "header_row: 6", "header_rwo: 6", "sources.bca.vintages.2017.header_rwo", "header_row"),
    ("catalog.yaml", "{form: data_caf}", "{from: data_caf}", "sources.couverture.vintages.2017[1].from", "form"),
    ("indicators.yaml", "reconciliation_tolerance:", "reconciliation_tolerence:", "reconciliation_tolerence",
     "reconciliation_tolerance"),
    ("indicators.yaml", "    unit: assistants maternels", "    units: assistants maternels",
     "indicators.am_agrees_actifs_annee.units", "unit"),
    ("zones.yaml", "short_name:", "shortname:", "epci.shortname", "short_name"),
    ("study.yaml", "responsible:", "responsable:", "responsable", "responsible"),
    ("governance.yaml", "\nassets:", "\nasset:", "asset", "assets"),
    ("report.yaml", "map_classes: 5", "map_class: 5", "colours.map_class", "map_classes"),
    ("operations.yaml", "  cron:", "  cronn:", "weekly_check.cronn", "cron"),
    ("tables.yaml", "    same_columns_as:", "    same_column_as:",
     "tables.confidential.published_candidate.same_column_as", "same_columns_as"),
    ("territory.csv", "code_rpe", "code_rep", "column code_rep", "code_rpe"),
    ("commune_changes.csv", "nouveau_code", "nouveau", "column nouveau", "nouveau_code"),
]


@pytest.mark.parametrize("name, old, new, key, meant", TYPOS, ids=[t[3] for t in TYPOS])
def test_a_misspelt_key_names_the_file_the_key_and_the_key_meant(project, name, old, new, key, meant):
    edit(project, name, old, new)
    message = only_problem(project)
    assert message.startswith(f"{project / 'config' / name}: {key} is an unknown key; expected one of: "), message
    assert message.endswith(f"(did you mean {meant}?)"), message


# (file, text, the wrong value, the message after the file's path)
WRONG_TYPES = [
    ("disclosure.yaml", "threshold: 5", "threshold: five", "threshold must be an integer ≥ 1 (got 'five')"),
    ("disclosure.yaml", "threshold: 5", "threshold: 0", "threshold must be an integer ≥ 1 (got 0)"),
    ("disclosure.yaml", "rate_decimals: 1", "rate_decimals: 1.5", "rate_decimals must be an integer ≥ 0 (got 1.5)"),
    ("disclosure.yaml", "earlier_releases: true", "earlier_releases: 1",
     "reader.earlier_releases must be true or false (got 1)"),
    ("disclosure.yaml", "am_plus_55_ans: {sensitive: true, contributors: [value]}",
     "am_plus_55_ans: {sensitive: true, contributors: [valeur]}",
     "indicators.am_plus_55_ans.contributors[0] must be one of: value, numerator, denominator, complement "
     "(got 'valeur'; did you mean value?)"),
    ("catalog.yaml", "header_row: 6", "header_row: six",
     "sources.bca.vintages.2017.header_row must be an integer ≥ 1 (got 'six')"),
    ("catalog.yaml", "blank_means: missing", "blank_means: absent",
     "sources.naissances.blank_means must be one of: secret_at_source, missing (got 'absent')"),
    ("indicators.yaml", "kind: count", "kind: total",
     "indicators.am_agrees_actifs_annee.kind must be one of: count, ratio (got 'total')"),
    ("zones.yaml", "infra_communal_levels: [iris]", "infra_communal_levels: {iris: yes}",
     "infra_communal_levels must be a list"),
    ("study.yaml", "status: open\n", "status: finished\n", "status must be one of: open, closed (got 'finished')"),
    ("study.yaml", "signed_on: 2022-08-04", "signed_on: le 4 août",
     "convention.signed_on must be a date YYYY-MM-DD (got 'le 4 août')"),
    ("report.yaml", "map_classes: 5", "map_classes: 0", "colours.map_classes must be an integer ≥ 1 (got 0)"),
    ("operations.yaml", "enabled: false", "enabled: off please", "weekly_check.enabled must be true or false"),
    ("territory.csv", "62028;Ames;632;RPE-LIL", "62028;Ames;six cents;RPE-LIL",
     "line 3, population_2021 must be an integer (got 'six cents')"),
]


@pytest.mark.parametrize("name, old, new, expected", WRONG_TYPES, ids=[t[2] for t in WRONG_TYPES])
def test_a_value_of_the_wrong_type_names_what_was_expected(project, name, old, new, expected):
    edit(project, name, old, new)
    message = only_problem(project)
    assert message.startswith(f"{project / 'config' / name}: {expected}"), message


def test_the_checks_between_files_name_both(project):
    edit(project, "report.yaml", "  am_taux_activite: \"Taux", "  am_taux_activte: \"Taux")
    edit(project, "disclosure.yaml", "    rpe: 50", "    rep: 50")
    edit(project, "disclosure.yaml", "  naissances: {sensitive: false}\n", "")
    assert sorted(check_config(project_paths())) == [
        "config/disclosure.yaml and config/indicators.yaml: indicator naissances has no entry in "
        "config/disclosure.yaml",
        "config/disclosure.yaml: protection.cost_by_level names rep, which is none of the levels "
        "commune, rpe, epci, iris",
        "config/report.yaml: sheet_names.am_taux_activte is not an indicator of config/indicators.yaml "
        "(did you mean am_taux_activite?)",
    ]


def test_the_rpe_of_territory_csv_are_declared_in_zones_yaml(project):
    edit(project, "zones.yaml", '  RPE-DOU: "RPE Douvrin-La Bassée"\n', "")
    assert "RPE codes not named in zones.yaml: ['RPE-DOU']" in only_problem(project)


def test_the_inequalities_have_one_place_and_a_documented_legacy_one():
    assert parse_policy(POLICY_TEXT).inequalities == (("decembre", "actifs"),)  # protection.inequalities
    moved = POLICY_TEXT.replace("protection:\n  inequalities: [[decembre, actifs]]",
                                "reader:\n  inequalities: [[decembre, actifs]]\nprotection:")
    assert parse_policy(moved).inequalities == (("decembre", "actifs"),)
    both = POLICY_TEXT.replace("protection:", "reader:\n  inequalities: []\nprotection:")
    with pytest.raises(PolicyError, match=r"listed twice \(reader.inequalities and protection.inequalities\)"):
        parse_policy(both)


@pytest.mark.parametrize("command", [["validate"], ["run"]])
def test_validate_and_run_stop_on_a_misspelt_key_with_the_message_only(project, capsys, command):
    edit(project, "disclosure.yaml", "\nreader:", "\nraeder:")
    assert main(command) == 2
    captured = capsys.readouterr()
    assert f"error: {project / 'config' / 'disclosure.yaml'}: raeder is an unknown key;" in captured.err
    assert "Traceback" not in captured.out + captured.err


def test_the_committed_schemas_are_the_models_own():
    assert stale_schemas() == [], "run `python -m pipeline schemas` (make schemas) and commit config/schemas/"


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_config_file_names_its_schema_for_editors(name):
    first = (PACKAGE_ROOT / "config" / name).read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=schemas/{schema_path(name).name}"
    assert schema_path(name, SCHEMAS).exists()
