"""Shared fixtures: an isolated copy of the project (config, raw, warehouse, reports,
DAGSTER_HOME) per test, and the generated sample files, made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.settings import PACKAGE_ROOT

SEED = 2022


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The sample raw files, generated once (read-only: copy before changing)."""
    from pipeline.sample import generate

    out = tmp_path_factory.mktemp("sample_raw")
    generate(out, seed=SEED)
    return out


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder with the repository's config; paths point at it."""
    root = tmp_path / "project"
    shutil.copytree(PACKAGE_ROOT / "config", root / "config")
    for folder in ("raw", "warehouse", "reports"):
        (root / folder).mkdir(parents=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("CAF_PROJECT_DIR", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for var in ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def sample_project(project, sample_dir) -> Path:
    """The isolated project with the sample files in raw/."""
    for path in sample_dir.iterdir():
        shutil.copy2(path, project / "raw" / path.name)
    return project
