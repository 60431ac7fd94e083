"""The refusals: no ingest for a closed or destroyed study (the gate every `raw_<source>`
asset and the file sensor call), no destruction unless the study is closed, published and
named again by whoever asks for it; and where the study's lifecycle state lives.

Small on purpose: `pipeline.defs.ingest` and `pipeline.defs.automation` need only this.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from pipeline.errors import PipelineError
from pipeline.settings import Paths, project_paths
from pipeline.study import Study, StudyError, load_study


class DestructionError(PipelineError, RuntimeError):
    """The destruction cannot proceed or did not complete; the message says why."""


class IngestRefused(dg.Failure):
    """An ingest asked for a closed or destroyed study."""


def current_study_id() -> str:
    """The study id every published output records."""
    return load_study().study_id


# ---- the study's state: journal and destruction marker ------------------------------------

def lifecycle_dir(paths: Paths | None = None) -> Path:
    return (paths or project_paths()).warehouse.parent / "lifecycle"


def journal_path(study_id: str, paths: Paths | None = None) -> Path:
    return lifecycle_dir(paths) / f"{study_id}.destruction-journal.json"


def marker_path(study_id: str, paths: Paths | None = None) -> Path:
    return lifecycle_dir(paths) / f"{study_id}.destroyed.json"


def certificate_paths(study_id: str, paths: Paths | None = None) -> tuple[Path, Path]:
    reports = (paths or project_paths()).reports
    stem = f"proces-verbal-destruction-{study_id}"
    return reports / f"{stem}.html", reports / f"{stem}.json"


def destruction_record(study_id: str, paths: Paths | None = None) -> dict | None:
    """The marker written when the study's data were destroyed (and the scan was clean)."""
    path = marker_path(study_id, paths)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# ---- refusals -----------------------------------------------------------------------------


def ingest_refusal(paths: Paths | None = None) -> str | None:
    """Why no CAF data may be ingested now, or None when ingest is allowed.

    For sensors: `if (why := ingest_refusal()): return dg.SkipReason(why)`.
    """
    paths = paths or project_paths()
    try:
        study = load_study(paths.study)
    except StudyError as exc:
        return f"ingest refused: {exc}"
    record = destruction_record(study.study_id, paths)
    if record:
        return (
            f"ingest refused: the CAF data of study {study.study_id} were destroyed on "
            f"{record.get('destroyed_at', '?')} (convention art. 2; certificate {record.get('certificate_html', '')}). "
            "Nothing may be ingested again under this convention; a new study needs a new convention "
            "and a new study_id in config/study.yaml."
        )
    if journal_path(study.study_id, paths).exists():
        return (
            f"ingest refused: the destruction of study {study.study_id}'s data has started and is not complete; "
            f"finish it with `make destroy STUDY_ID={study.study_id}`."
        )
    if study.closed:
        published = study.published_on.isoformat() if study.published_on else "date not given"
        return (
            f"ingest refused: study {study.study_id} is closed (published: {published}); the convention ended "
            "with the publication (art. 7) and its data must now be destroyed (art. 2): "
            f"`make destroy STUDY_ID={study.study_id}`. To correct something before that, set "
            "`status: open` in config/study.yaml."
        )
    return None


def assert_ingest_allowed() -> None:
    """Raise a clear dg.Failure when the study is closed or its data destroyed."""
    why = ingest_refusal()
    if why:
        raise IngestRefused(description=why, allow_retries=False)


AUTOMATED_RUN_TAGS = (
    "dagster/schedule_name",
    "dagster/sensor_name",
    "dagster/auto_materialize",
    "dagster/from_automation_condition",
    "dagster/asset_evaluation_id",
)


OPERATOR_MISSING = (
    "the operator is not named: the certificate says who asked for the destruction (name and role), "
    "the computer account alone is not an answer: make destroy STUDY_ID=<study_id> OPERATOR='Prénom Nom, fonction'"
)


def destruction_problems(study: Study, requested_study_id: str, run_tags: dict | None = None,
                         operator: str | None = None) -> list[str]:
    """Everything that forbids the destruction now; empty when it may proceed (`operator`:
    None when the caller does not check it)."""
    problems = []
    if operator is not None and not operator.strip():
        problems.append(OPERATOR_MISSING)
    automated = sorted(t for t in AUTOMATED_RUN_TAGS if t in (run_tags or {}))
    if automated:
        problems.append(
            f"this run was started by a schedule, sensor or automation ({', '.join(automated)}); the destruction "
            "runs only on explicit request: `make destroy STUDY_ID=<study_id>`"
        )
    requested = (requested_study_id or "").strip()
    if not requested:
        problems.append(
            "the run config must repeat the study id: "
            f"ops: {{study_data_destruction: {{config: {{study_id: {study.study_id}, operator: <name, role>}}}}}}"
        )
    elif requested != study.study_id:
        problems.append(
            f"the run config names study {requested!r}, but config/study.yaml declares {study.study_id!r}"
        )
    if not study.closed:
        problems.append(
            f"config/study.yaml: status is {study.status!r}; set `status: closed` once the study is published "
            "(the convention ends with the publication, art. 7)"
        )
    if study.published_on is None:
        problems.append("config/study.yaml: published_on is empty; give the publication date (YYYY-MM-DD)")
    elif study.published_on > dt.date.today():
        problems.append(f"config/study.yaml: published_on {study.published_on.isoformat()} is in the future")
    return problems


def decode_sentinels(values: Iterable[str]) -> list[str]:
    """Sentinels of the run config, given as `b64:<base64 of UTF-8>` (or `hex:`).

    Never in clear: Dagster stores the run config under DAGSTER_HOME, where the residue scan
    would find the very value it looks for. `python -m pipeline destroy --sentinel TEXT`
    encodes them.
    """
    out = []
    for i, value in enumerate(values):
        kind, _, payload = value.partition(":")
        try:
            if kind == "b64":
                raw = base64.b64decode(payload, validate=True)
            elif kind == "hex":
                raw = bytes.fromhex(payload)
            else:
                raise DestructionError(
                    f"sentinel #{i + 1} is not encoded: give it as b64:<base64> (or hex:<hex>) so that Dagster's copy "
                    "of the run config does not hold it in clear (python -m pipeline destroy --sentinel TEXT does it)"
                )
            text = raw.decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            if isinstance(exc, DestructionError):
                raise
            raise DestructionError(f"sentinel #{i + 1} cannot be decoded: {exc.__class__.__name__}") from None
        if len(text) < 4:
            raise DestructionError(f"sentinel #{i + 1} is shorter than 4 characters: it would match by chance")
        out.append(text)
    return out


def encode_sentinel(text: str) -> str:
    return "b64:" + base64.b64encode(text.encode("utf-8")).decode("ascii")


