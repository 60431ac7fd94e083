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
from typing import get_args

from pipeline.config_models.base import read_yaml, validated
from pipeline.config_models.study import Status, StudyFile
from pipeline.errors import PipelineError
from pipeline.settings import Paths, project_paths

STATUS_VALUES = get_args(Status)


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


def _path(where: Paths | Path | None) -> Path:
    if isinstance(where, Path):
        return where
    return (where or project_paths()).study


def load_study(where: Paths | Path | None = None) -> Study:
    """The study, from the project's config/study.yaml (or the given paths or file)."""
    path = _path(where)
    doc = read_yaml(path, StudyError, "does not exist: the study must be declared in config/study.yaml")
    study = validated(StudyFile, doc, path, StudyError)
    return Study(
        study_id=study.study_id,
        title=study.title,
        status=study.status,
        published_on=study.published_on,
        responsible=study.responsible,
        # as written: the certificate and the reports read these keys, the model says which exist
        parties=study.parties.model_dump(exclude_unset=True),
        convention=study.convention.model_dump(exclude_unset=True),
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
