"""The models of `config/study.yaml` (the study and its convention) and of
`config/operations.yaml` (the weekly full check)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline.config_models.base import ConfigError, Model, Switch, Text, expect, read_yaml, validated

StudyId = expect(str, "letters, digits, '.', '_' and '-' (e.g. cabbalr-caf62-am-2022)",
                 pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Date = expect(dt.date, "a date YYYY-MM-DD")
Status = Literal["open", "closed"]


class Parties(Model):
    data_provider: Text | None = Field(default=None, description="Who sends the data (the CAF).")
    partner: Text | None = Field(default=None, description="Who receives them (default: the EPCI's name).")


class Convention(Model):
    signed_on: Date | None = None
    decision_on: Date | None = None
    signatories: list[Text] = []  # a list, as the certificate writes it


class StudyFile(Model):
    """config/study.yaml: the study this pipeline serves and the convention governing its data."""

    study_id: StudyId = Field(description="Repeated to confirm the destruction (make destroy STUDY_ID=...).")
    title: str = ""
    parties: Parties = Field(default_factory=Parties)
    convention: Convention = Field(default_factory=Convention)
    status: Status = Field(description="open while the study runs; closed once it is published (art. 7).")
    published_on: Date | None = Field(default=None, description="The day the study was published.")
    responsible: str = ""


class WeeklyCheck(Model):
    enabled: Switch = Field(default=False, description="Re-validate each staged year from its raw copy every week.")
    cron: expect(str, "a cron expression of five fields, e.g. '0 6 * * 1'", pattern=r"^\S+( \S+){4}$") = Field(
        default="0 6 * * 1", description="When, Paris time.")


class OperationsFile(Model):
    """config/operations.yaml: operations settings, read when the code location loads."""

    weekly_check: WeeklyCheck = Field(default_factory=WeeklyCheck)


def load_operations(path: Path) -> OperationsFile:
    """config/operations.yaml, checked by its model (every setting defaults when the file is
    absent). Read here, having no module of its own: the schedule is its only reader."""
    doc = read_yaml(path, ConfigError, "missing") if path.exists() else {}
    return validated(OperationsFile, doc, path, ConfigError)
