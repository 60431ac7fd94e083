"""The destruction's journal: its progress on disk after every step, so that a run killed
half-way resumes where it stopped. It holds paths, table names, sizes, hashes and counts only."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path

from pipeline.lifecycle.dates import iso
from pipeline.lifecycle.shredder import write_json_atomic


class Journal:
    def __init__(self, path: Path, study_id: str, on_mark: Callable[[str], None] | None = None):
        self.path = path
        self.on_mark = on_mark  # called after each step is recorded (the destruction's checkpoints)
        if path.exists():
            self.data = json.loads(path.read_text(encoding="utf-8"))
        else:
            self.data = {"format": 1, "study_id": study_id, "created_at": iso(), "attempts": [], "steps": {},
                         "inventory": {}, "results": {}}

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def mark(self, step: str) -> None:
        self.data["steps"][step] = iso()
        self.save()
        if self.on_mark:
            self.on_mark(step)

    @property
    def inventory(self) -> dict:
        return self.data["inventory"]

    @property
    def results(self) -> dict:
        return self.data["results"]


def os_user() -> str:
    """The operating-system account running the destruction (for the certificate)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "?"
