"""The study of `config/study.yaml`: its id, parties, convention dates and status.

Reading and checking the file belongs here (and writing its status, for closing the
study); what the status allows (ingest refused, destruction) is `pipeline.lifecycle`'s
business, and how the study is presented is the reports'.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError
from pipeline.settings import Paths, project_paths
from pipeline.yamlfile import load_yaml

STATUS_VALUES = ("open", "closed")


class StudyError(PipelineError, ValueError):
    """config/study.yaml is missing or says something the pipeline cannot use."""


@dataclass(frozen=True)
class Study:
    study_id: str
    title: str
    status: str  # open | closed
    published_on: dt.date | None
    responsible: str
    parties: dict = field(default_factory=dict)
    convention: dict = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.status == "closed"


def _date(value: Any, key: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise StudyError(f"config/study.yaml: {key} is {value!r}, not a date YYYY-MM-DD") from None


def _path(where: Paths | Path | None) -> Path:
    if isinstance(where, Path):
        return where
    return (where or project_paths()).study


def load_study(where: Paths | Path | None = None) -> Study:
    """The study, from the project's config/study.yaml (or the given paths or file)."""
    path = _path(where)
    try:
        doc = load_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise StudyError(f"{path} does not exist: the study must be declared in config/study.yaml") from None
    except yaml.YAMLError as exc:
        raise StudyError(f"{path} is not valid YAML: {exc}") from None
    study_id = str(doc.get("study_id") or "").strip()
    if not study_id:
        raise StudyError(f"{path}: study_id is missing")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", study_id):
        raise StudyError(f"{path}: study_id {study_id!r} may hold letters, digits, '.', '_' and '-' only")
    status = str(doc.get("status") or "").strip()
    if status not in STATUS_VALUES:
        raise StudyError(f"{path}: status is {status!r}; it must be one of {', '.join(STATUS_VALUES)}")
    return Study(
        study_id=study_id,
        title=str(doc.get("title") or ""),
        status=status,
        published_on=_date(doc.get("published_on"), "published_on"),
        responsible=str(doc.get("responsible") or ""),
        parties=dict(doc.get("parties") or {}),
        convention=dict(doc.get("convention") or {}),
    )


def set_study_status(status: str, published_on: dt.date | None, path: Path | None = None) -> None:
    """Set `status` and `published_on` in config/study.yaml, keeping its comments and layout."""
    if status not in STATUS_VALUES:
        raise StudyError(f"status must be one of {', '.join(STATUS_VALUES)}")
    path = _path(path)
    text = path.read_text(encoding="utf-8")
    for key, value in (("status", status), ("published_on", published_on.isoformat() if published_on else "null")):
        text, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text)
        if n != 1:
            text = text.rstrip("\n") + f"\n{key}: {value}\n"
    path.write_text(text, encoding="utf-8")
    load_study(path)
