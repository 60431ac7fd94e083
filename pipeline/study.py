"""The study of `config/study.yaml`: its id, parties, convention dates and status.

Reading the file belongs here; what the status allows (destruction, refusals) is
`pipeline.lifecycle`'s business.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import yaml

from pipeline.settings import Paths, project_paths


class StudyError(ValueError):
    pass


@dataclass(frozen=True)
class Study:
    study_id: str
    title: str
    status: str  # open | closed
    published_on: dt.date | None
    responsible: str
    parties: dict[str, str] = field(default_factory=dict)
    convention: dict = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.status == "closed"


def load_study(paths: Paths | None = None) -> Study:
    path = (paths or project_paths()).study
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: the study description is missing") from None
    try:
        status = str(doc["status"])
        if status not in ("open", "closed"):
            raise StudyError(f"{path}: status must be open or closed")
        return Study(
            study_id=str(doc["study_id"]),
            title=str(doc["title"]),
            status=status,
            published_on=doc.get("published_on"),
            responsible=str(doc.get("responsible", "")),
            parties={str(k): str(v) for k, v in (doc.get("parties") or {}).items()},
            convention=dict(doc.get("convention") or {}),
        )
    except (KeyError, TypeError) as exc:
        raise StudyError(f"{path}: missing or malformed entry ({exc})") from None
