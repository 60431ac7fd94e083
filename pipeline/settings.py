"""Where the project's folders and files are.

Everything is relative to the project root, which is the folder holding `config/`.
`CAF_PROJECT_DIR` moves the whole set (tests point it at a temporary copy); the
individual folders can also be moved with `CAF_RAW_DIR`, `CAF_WAREHOUSE`,
`CAF_REPORTS_DIR` and `CAF_CONFIG_DIR`. Nothing else belongs here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    root: Path
    config: Path
    raw: Path
    warehouse: Path
    reports: Path

    @property
    def catalog(self) -> Path:
        return self.config / "catalog.yaml"

    @property
    def territory(self) -> Path:
        return self.config / "territory.csv"

    @property
    def zones(self) -> Path:
        return self.config / "zones.yaml"

    @property
    def commune_changes(self) -> Path:
        return self.config / "commune_changes.csv"

    @property
    def study(self) -> Path:
        return self.config / "study.yaml"


def project_paths() -> Paths:
    """The project's paths, from the environment or the defaults beside this package."""
    root = Path(os.environ.get("CAF_PROJECT_DIR", PACKAGE_ROOT)).resolve()
    return Paths(
        root=root,
        config=Path(os.environ.get("CAF_CONFIG_DIR", root / "config")),
        raw=Path(os.environ.get("CAF_RAW_DIR", root / "raw")),
        warehouse=Path(os.environ.get("CAF_WAREHOUSE", root / "warehouse" / "warehouse.duckdb")),
        reports=Path(os.environ.get("CAF_REPORTS_DIR", root / "reports")),
    )
