"""Releases of the sample built through the real jobs, for the attacker of several releases
(tests/attacker_releases.py, tests/test_releases_actions.py).

`Study(folder, rpes=...)` copies the repository's config/ into `folder` (only the communes of
`rpes`, for a study that fits in the suite); `run()` generates the sample into `folder/raw`
with seed 2022 (the generator follows the copied territory) and runs every job the way
`make run` does (`tests.helpers.materialize_all`, `CAF_PROJECT_DIR` and `DAGSTER_HOME`
pointed at the folder); `release()` is `make release`; `view()` reads the release as the
reader holds it.

Operator actions edit the copied config:

- `move_commune(config, code, to_rpe)`: the commune changes RPE (territory.csv);
- `merge_communes(config, absorbed, into)`: a commune nouvelle (commune_changes.csv rows
  absorbed -> into, the absorbed commune dropped from territory.csv, its population added);
- `split_rpe(config, rpe, communes, new_code, new_name)`, `merge_rpes(config, keep, absorbed)`;
- `policy_change(config, threshold=..., rate_decimals=...)`: config/disclosure.yaml, a new version;

and, on the data side (arguments of `run()`),

- `corrections`: a CAF correction, `[(year, commune_code, measure, delta), ...]`: the sample's
  model is changed before the files are written, so the commune rows, the RPE and EPCI rows
  and the CAF's own secrecy blanks of those files all follow (a corrected file re-sent);
- `drop_years`: the files of those years are not in raw/ (a first release before a year arrived);
- `merger`: the files after a commune nouvelle hold its communes' sums.

`Life(study)` takes a study through steps, each run, attacked on the union of every release
so far (the views hold the values behind the CAF's blanks: the attacker identifies figures
across releases by what they are), then released.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from collections.abc import Iterable
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline.settings import PACKAGE_ROOT, Paths
from tests.attacker_releases import ReleaseView

SEED = 2022
ENV_CLEARED = ("CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR")

# -- operator actions on a copied config/ ------------------------------------------------------------


def _territory(config: Path) -> pd.DataFrame:
    return pd.read_csv(config / "territory.csv", sep=";", dtype=str, encoding="utf-8")


def _write_territory(config: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(config / "territory.csv", sep=";", index=False, encoding="utf-8")


def _zones_yaml(config: Path) -> tuple[str, dict]:
    text = (config / "zones.yaml").read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def move_commune(config: Path, code: str, to_rpe: str) -> None:
    """Commune `code` now belongs to RPE `to_rpe` (issue 22: Hermin 62441 to RPE-NOE)."""
    t = _territory(config)
    if code not in set(t["code_commune"]):
        raise KeyError(f"no commune {code} in territory.csv")
    _, zones = _zones_yaml(config)
    if to_rpe not in zones["rpe"]:
        raise KeyError(f"no RPE {to_rpe} in zones.yaml")
    t.loc[t["code_commune"] == code, "code_rpe"] = to_rpe
    _write_territory(config, t)


def _drop_rpe(config: Path, code: str) -> None:
    text = (config / "zones.yaml").read_text(encoding="utf-8")
    new = re.sub(rf"(?m)^  {re.escape(code)}:.*\n", "", text)
    if new == text:
        raise KeyError(f"no RPE {code} in zones.yaml")
    (config / "zones.yaml").write_text(new, encoding="utf-8")


def merge_communes(config: Path, absorbed: str, into: str, date_effet: str = "2022-01-01",
                   motif: str = "commune nouvelle") -> None:
    """A commune nouvelle: `absorbed` joins `into` (a row absorbed;into;date;motif in
    commune_changes.csv; the absorbed commune leaves territory.csv, its population goes to `into`).
    The RPE of `into` is the commune nouvelle's."""
    t = _territory(config)
    codes = set(t["code_commune"])
    if absorbed not in codes or into not in codes:
        raise KeyError(f"merge of {absorbed} into {into}: both must be communes of territory.csv")
    pop = int(t.loc[t["code_commune"] == absorbed, "population_2021"].iloc[0])
    t.loc[t["code_commune"] == into, "population_2021"] = str(
        int(t.loc[t["code_commune"] == into, "population_2021"].iloc[0]) + pop)
    t = t[t["code_commune"] != absorbed]
    _write_territory(config, t)
    path = config / "commune_changes.csv"
    text = path.read_text(encoding="utf-8") if path.exists() else "ancien_code;nouveau_code;date_effet;motif\n"
    if not text.endswith("\n"):
        text += "\n"
    text += f"{absorbed};{into};{date_effet};{motif}\n"
    path.write_text(text, encoding="utf-8")


def _add_rpe(config: Path, code: str, name: str) -> None:
    text, zones = _zones_yaml(config)
    if code in zones["rpe"]:
        raise KeyError(f"RPE {code} already in zones.yaml")
    lines = text.splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if re.match(r"^  RPE-[^:]+:", line))
    lines.insert(last + 1, f"  {code}: {name}\n")
    (config / "zones.yaml").write_text("".join(lines), encoding="utf-8")


def split_rpe(config: Path, rpe: str, communes: Iterable[str], new_code: str, new_name: str) -> None:
    """The `communes` of `rpe` form a new RPE `new_code`."""
    t = _territory(config)
    communes = set(communes)
    inside = set(t.loc[t["code_rpe"] == rpe, "code_commune"])
    if not communes or not communes <= inside or communes == inside:
        raise ValueError(f"split of {rpe}: {sorted(communes)} must be some, not all, of {sorted(inside)}")
    _add_rpe(config, new_code, new_name)
    t.loc[t["code_commune"].isin(communes), "code_rpe"] = new_code
    _write_territory(config, t)


def merge_rpes(config: Path, keep: str, absorbed: str) -> None:
    """The communes of RPE `absorbed` join `keep`; `absorbed` disappears."""
    t = _territory(config)
    if not (t["code_rpe"] == absorbed).any() or not (t["code_rpe"] == keep).any():
        raise KeyError(f"merge of {absorbed} into {keep}: both must have communes")
    t.loc[t["code_rpe"] == absorbed, "code_rpe"] = keep
    _write_territory(config, t)
    _drop_rpe(config, absorbed)


def policy_change(config: Path, threshold: int | None = None, rate_decimals: int | None = None) -> None:
    """config/disclosure.yaml with another threshold and/or rounding of rates; its version
    gets a suffix (the policy's version must change whenever a rule changes)."""
    path = config / "disclosure.yaml"
    text = path.read_text(encoding="utf-8")
    if threshold is not None:
        text, n = re.subn(r"(?m)^threshold: *\d+", f"threshold: {int(threshold)}", text)
        assert n == 1, "disclosure.yaml: no threshold line"
    if rate_decimals is not None:
        text, n = re.subn(r"(?m)^rate_decimals: *\d+", f"rate_decimals: {int(rate_decimals)}", text)
        assert n == 1, "disclosure.yaml: no rate_decimals line"
    tag = f"t{threshold}" if threshold is not None else ""
    tag += f"d{rate_decimals}" if rate_decimals is not None else ""
    text, n = re.subn(r'(?m)^version: *"([^"]+)"', lambda m: f'version: "{m.group(1)}-{tag or "x"}"', text)
    assert n == 1, "disclosure.yaml: no version line"
    path.write_text(text, encoding="utf-8")


HERMIN = "62441"

# -- data side: corrected files, missing years ----------------------------------------------------


@contextmanager
def _corrected_model(corrections):
    """The sample's model with `corrections` [(year, code, measure, delta)] applied (every
    source drawn from the model then follows, totals and the CAF's blanks included)."""
    if not corrections:
        yield
        return
    import pipeline.sample.model as model

    original = model.simulate

    def simulate(*args, **kwargs):
        frame = original(*args, **kwargs)
        for year, code, measure, delta in corrections:
            if measure not in frame.columns:
                raise KeyError(f"the sample model has no measure {measure}")
            frame.loc[(int(year), str(code)), measure] = frame.loc[(int(year), str(code)), measure] + delta
        return frame

    model.simulate = simulate
    try:
        yield
    finally:
        model.simulate = original


@contextmanager
def _merged_model(before: pd.DataFrame, absorbed: str, into: str):
    """The sample's model as the CAF would re-send it after a commune nouvelle: drawn for the
    communes of `before` (the territory.csv of the earlier release, same order, same
    populations, hence the same draws), then the rows of `absorbed` added to those of `into`
    and dropped: every other commune keeps its figures, the nouvelle holds the sum."""
    import pipeline.sample.model as model

    original = model.simulate
    old_codes = list(before["code_commune"])
    old_pop = before["population_2021"].astype(float).to_numpy()

    def simulate(codes, population, years, rng):
        technical = [c for c in codes if c not in set(old_codes) | {absorbed}]
        extra = [float(p) for c, p in zip(codes, population) if c in technical]
        frame = original(old_codes + technical, np.concatenate([old_pop, extra]), years, rng)
        for year in years:
            frame.loc[(year, into)] = frame.loc[(year, into)] + frame.loc[(year, absorbed)]
        return frame.drop(index=absorbed, level=1)

    model.simulate = simulate
    try:
        yield
    finally:
        model.simulate = original


def correct_value(raw_dir: Path, corrections, seed: int = SEED) -> list[Path]:
    """Regenerate the sample into `raw_dir` with a corrected model (a corrected CAF file):
    `corrections` is [(year, commune_code, measure, delta), ...], e.g. (2021, "62441",
    "enfants_moins_3_ans", +3). The config read is the one `CAF_PROJECT_DIR` points at
    (`build_release` sets it)."""
    from pipeline.sample import generate

    with _corrected_model(corrections):
        return generate(Path(raw_dir), seed=seed)


def drop_year(raw_dir: Path, year: int) -> list[str]:
    """Remove the files of `year` from raw/ (BCA<year>.xlsx, BCECPAJ<yy>.xlsx, ...): the release
    made before that year's files arrived. The names removed."""
    short = str(year)[2:]
    pattern = re.compile(rf"(?<!\d)({year}|{short})(?!\d)")
    gone = []
    for path in sorted(Path(raw_dir).iterdir()):
        stem = path.stem
        # a file of that year only: its name holds the year and no span of years
        if pattern.search(stem) and not re.search(r"\d{4}_\d{4}", stem):
            path.unlink()
            gone.append(path.name)
    return gone


# -- a release through the real jobs -------------------------------------------------------------


@contextmanager
def project_env(root: Path):
    saved = {k: os.environ.get(k) for k in ("CAF_PROJECT_DIR", "DAGSTER_HOME", *ENV_CLEARED)}
    os.environ["CAF_PROJECT_DIR"] = str(root)
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    for var in ENV_CLEARED:
        os.environ.pop(var, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def read_release(root_or_warehouse: Path, name: str, config: Path | None = None) -> ReleaseView:
    """The release a built project holds: published.indicators, confidential.indicators and
    the zones as the masking uses them (`territory.zones(infra_zones(published, territory))`)."""
    from pipeline.disclosure.policy import load_policy
    from pipeline.territory import infra_zones, load_territory
    from tests.helpers import published_and_confidential

    path = Path(root_or_warehouse)
    warehouse = path if path.suffix == ".duckdb" else path / "warehouse" / "warehouse.duckdb"
    config = config or warehouse.parent.parent / "config"
    published, confidential = published_and_confidential(warehouse)
    root = config.parent
    paths = Paths(root=root, config=config, raw=root / "raw", warehouse=warehouse, reports=root / "reports")
    territory = load_territory(paths)
    policy = load_policy(paths)
    zones = territory.zones(infra_zones(published, territory))[["level", "zone_code", "parent_code"]]
    return ReleaseView(name, published, zones, confidential, int(policy.rate_decimals), int(policy.threshold))


def fill_blanks(confidential: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """confidential.indicators with the values the CAF blanked at source filled from the
    sample's truth (`pipeline.sample.sample_truth`: source, year, level, zone_code, measure,
    value), each from the source its indicator reads."""
    from pipeline.indicators import load_indicators

    defs = {i.id: i for i in load_indicators().indicators}
    behind = {(str(r.source), str(r.level), str(r.zone_code), int(r.year), str(r.measure)): float(r.value)
              for r in truth.itertuples(index=False) if pd.notna(r.value)}
    out = confidential.copy()
    for column in ("value", "numerator", "denominator"):
        out[column] = out[column].astype(float)
    for i, r in enumerate(out.itertuples(index=False)):
        d = defs.get(r.indicator)
        if d is None:
            continue
        pairs = [("value", d.measure)] if d.kind == "count" else [("numerator", d.numerator),
                                                                  ("denominator", d.denominator)]
        for column, measure in pairs:
            if measure and pd.isna(getattr(r, column)):
                v = behind.get((d.source, str(r.level), str(r.zone_code), int(r.year), measure))
                if v is not None:
                    out.iat[i, out.columns.get_loc(column)] = v
    return out


# -- one study released again and again, through the jobs -----------------------------------------


def keep_rpes(config: Path, rpes: Iterable[str]) -> None:
    """A smaller territory: only the communes of `rpes` (territory.csv) and those RPEs
    (zones.yaml), so that a study released many times runs in seconds per release."""
    rpes = set(rpes)
    t = _territory(config)
    if not rpes <= set(t["code_rpe"]):
        raise KeyError(f"no communes in {sorted(rpes - set(t['code_rpe']))}")
    _write_territory(config, t[t["code_rpe"].isin(rpes)])
    _, zones = _zones_yaml(config)
    for code in sorted(set(zones["rpe"]) - rpes):
        _drop_rpe(config, code)


class Study:
    """A project folder released again and again: `run()` regenerates the CAF's files from
    the current config/ (with corrections, missing years or a commune nouvelle's sums) and
    runs every job as `make run` does, with the masking protecting against every release;
    `release()` is `make release`; `view()` reads the published table as the reader holds it."""

    def __init__(self, folder: Path, rpes: Iterable[str] | None = None):
        import dagster as dg

        self.root = Path(folder)
        self.root.mkdir(parents=True, exist_ok=False)
        shutil.copytree(PACKAGE_ROOT / "config", self.config)
        for sub in ("raw", "warehouse", "reports", "dagster_home"):
            (self.root / sub).mkdir()
        if rpes is not None:
            keep_rpes(self.config, rpes)
        self.instance = dg.DagsterInstance.ephemeral()
        self.released: list[str] = []
        self.mergers: list[tuple] = []  # communes nouvelles so far: (territory before, absorbed, into)

    @property
    def config(self) -> Path:
        return self.root / "config"

    def territory(self) -> pd.DataFrame:
        return _territory(self.config)

    def run(self, corrections=(), drop_years: Iterable[int] = (), merger: tuple | None = None,
            seed: int = SEED) -> float:
        """The CAF sends its files again (raw/ emptied, then generated); every job runs.
        `merger`: (territory before, absorbed, into) of a commune nouvelle, kept for the files
        sent after it. The seconds taken."""
        from pipeline.sample import sample_truth
        from tests.helpers import materialize_all

        started = time.perf_counter()
        for path in (self.root / "raw").iterdir():
            path.unlink()
        if merger is not None:
            self.mergers.append(merger)  # the CAF's files hold the nouvelle's sums from now on
        with project_env(self.root), ExitStack() as stack:
            for before, absorbed, into in self.mergers:
                stack.enter_context(_merged_model(before, absorbed, into))
            correct_value(self.root / "raw", list(corrections), seed=seed)
            with _corrected_model(list(corrections)):  # the values behind the files just sent, blanks included
                self.truth = sample_truth(seed)
            for year in drop_years:
                drop_year(self.root / "raw", year)
            failed = materialize_all(self.instance)
        if failed:
            raise RuntimeError("the pipeline failed:\n" + "\n".join(failed))
        return time.perf_counter() - started

    def release(self, note: str = "") -> str:
        from pipeline.launch import launch_release

        with project_env(self.root):
            launched = launch_release(self.instance, operator="test", note=note)
        if not launched.success:
            raise RuntimeError(f"release {note!r} refused")
        self.released.append(f"R{len(self.released) + 1}")
        return self.released[-1]

    def view(self, name: str, behind_blanks: bool = False) -> ReleaseView:
        """The release as the reader holds it; `behind_blanks`: its confidential table holds
        the values the CAF blanked at source too (the sample's truth), so that an attacker
        identifies figures across releases by what they really are."""
        view = read_release(self.root, name)
        if behind_blanks:
            view = dataclasses.replace(view, confidential=fill_blanks(view.confidential, self.truth))
        return view

    def masking_metadata(self) -> dict:
        import dagster as dg

        event = self.instance.get_latest_materialization_event(dg.AssetKey("core_masking"))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def commune_changes(self) -> pd.DataFrame:
        return pd.read_csv(self.config / "commune_changes.csv", sep=";", dtype=str)


@dataclasses.dataclass
class Step:
    name: str
    view: ReleaseView
    leaks: list
    metadata: dict
    stats: dict
    seconds: float


class Life:
    """A study released after each step, the union of its releases attacked at each."""

    def __init__(self, study: Study):
        self.study = study
        self.views: list[ReleaseView] = []
        self.steps: dict[str, Step] = {}

    def step(self, name: str, **run) -> Step:
        from pipeline.disclosure.policy import load_policy
        from pipeline.indicators import load_indicators
        from tests.attacker_releases import LAST, attack_releases

        seconds = self.study.run(**run)
        view = self.study.view(f"R{len(self.views) + 1}", behind_blanks=True)
        policy = load_policy(path=self.study.config / "disclosure.yaml")
        leaks = attack_releases([*self.views, view], load_indicators(), policy,
                                self.study.commune_changes()) if self.views else []
        stats = {"linked": LAST.linked, "corrected": LAST.corrected, "known_before": LAST.known_before}
        self.steps[name] = Step(name, view, leaks, self.study.masking_metadata(), stats, seconds)
        self.views.append(view)
        self.study.release(name)
        return self.steps[name]
