"""The models of the territory referential: `config/zones.yaml` (the zones above the commune)
and a row of `config/territory.csv` and of `config/commune_changes.csv`.

The CSV files are checked row by row with the same models, so that a bad cell is named by
its line and column like a bad key of a YAML file (`line 14, code_rpe`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from pipeline.config_models.base import PATTERN_WORDS, Model, Row, Text, describe, shaped

COMMUNE_CODE = r"^(\d{5}|2[AB]\d{3})$"
PATTERN_WORDS[COMMUNE_CODE] = "an INSEE commune code (5 characters, e.g. 62119)"
CommuneCode = Annotated[str, Field(pattern=COMMUNE_CODE)]
Cell = Annotated[str, Field(min_length=1)]


class Epci(Model):
    code: Text = Field(description="SIREN of the EPCI.")
    name: Text | None = Field(default=None, description="Its name (default: its name under `epcis`).")
    short_name: str | None = Field(default=None, description="Short name in the reports (default: name).")


class EpciEntry(Model):
    name: Text


class ZonesFile(Model):
    """config/zones.yaml: the RPE, the EPCI(s) and the levels below the commune."""

    epci: Epci | None = Field(default=None, description="The one EPCI of the territory.")
    epcis: dict[str, shaped("a name or {name: ...}", scalar=Text, mapping=EpciEntry)] | None = Field(
        default=None, description="Several EPCIs, code -> name (each commune names its EPCI in code_epci).")
    rpe: dict[str, Text] = Field(description="RPE code -> name (communes name their RPE in territory.csv).")
    infra_communal_levels: tuple[str, ...] = Field(
        default=(), description="Levels below the commune (iris): convention art. 4's minimum of allocataires.")


class CommuneRow(Row):
    """A line of config/territory.csv."""

    code_commune: CommuneCode
    nom_commune: Cell
    population_2021: Annotated[int, Field(ge=0)]  # "632", or 632.0 in a column pandas read with a blank
    code_rpe: Cell
    code_epci: Cell | None = None


class CommuneChangeRow(Row):
    """A line of config/commune_changes.csv: a former commune code and the referential's code."""

    ancien_code: CommuneCode
    nouveau_code: CommuneCode
    date_effet: dt.date | None = None
    motif: str | None = None


def check_rows(model: type[Row], columns: list[str], rows: list[dict], where: str,
               error: type[Exception]) -> None:
    """The header and each row of a CSV file (a row: column -> cell, None when empty) as
    `model`; `error` naming the column, or the first bad line (line 2: the first row)."""
    known = list(model.model_fields)
    for column in columns:
        if column not in known:
            raise error(f"{where}: column " + describe({"type": "unknown_key", "loc": (),
                                                        "ctx": {"key": column, "known": known}}, None))
    for column, field in model.model_fields.items():
        if field.is_required() and column not in columns:
            raise error(f"{where}: column {column} is required")
    try:
        _adapter(model).validate_python(rows)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        line, *rest = first["loc"]
        raise error(f"{where}: line {line + 2}, " + describe({**first, "loc": tuple(rest)}, rows[line])) from None


_ADAPTERS: dict[type, TypeAdapter] = {}


def _adapter(model: type[Row]) -> TypeAdapter:
    if model not in _ADAPTERS:
        _ADAPTERS[model] = TypeAdapter(list[model])
    return _ADAPTERS[model]
