"""Shared by the timing benchmarks (suite, excel_reading, national): isolated project
folders, measuring a command (wall time, peak memory), the machine's description, and
bench/results.md, where each benchmark rewrites its own section.

Not a benchmark itself (the dispatcher skips modules starting with `_`).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from unittest import mock

from pipeline.settings import PACKAGE_ROOT, Paths, project_paths

RESULTS = Path(__file__).with_name("results.md")
PACKAGES = ("dagster", "duckdb", "pandas", "numpy", "scipy", "highspy", "python-calamine", "openpyxl", "pandera")
PYTHON = sys.executable


# ---------------------------------------------------------------------------------------
# Isolated projects
# ---------------------------------------------------------------------------------------


# The variables that move the project's folders (pipeline/settings.py): a benchmark's
# processes get CAF_PROJECT_DIR and none of the others.
PATH_VARIABLES = ("CAF_PROJECT_DIR", "CAF_RAW_DIR", "CAF_WAREHOUSE", "CAF_REPORTS_DIR", "CAF_CONFIG_DIR")


@dataclass(frozen=True)
class Project:
    """A throw-away project folder: config, raw, warehouse, reports, a Dagster home."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PATH_VARIABLES}
        env.update(CAF_PROJECT_DIR=str(self.root), DAGSTER_HOME=str(self.home), PYTHONPATH=str(PACKAGE_ROOT))
        return env

    def paths(self) -> Paths:
        """Where the pipeline, run with `env()`, finds this project's folders: what
        `pipeline.settings.project_paths()` says with those variables set."""
        env = self.env()
        with mock.patch.dict(os.environ, {k: env[k] for k in PATH_VARIABLES if k in env}):
            for k in PATH_VARIABLES:
                if k not in env:
                    os.environ.pop(k, None)
            return project_paths()  # os.environ is restored on leaving the block

    @property
    def config(self) -> Path:
        return self.paths().config

    @property
    def raw(self) -> Path:
        return self.paths().raw

    @property
    def warehouse(self) -> Path:
        return self.paths().warehouse

    def reset_state(self) -> None:
        """Empty warehouse, reports and Dagster home (config and raw stay)."""
        paths = self.paths()
        for folder in (paths.warehouse.parent, paths.reports, self.home):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        # the project's instance settings (pools, no telemetry), as `make run` uses them
        instance = PACKAGE_ROOT / ".dagster_home" / "dagster.yaml"
        if instance.exists():
            shutil.copy2(instance, self.home / "dagster.yaml")


def new_project(root: Path, config: Path | None = None) -> Project:
    """A project folder at `root` with a copy of `config` (default: the repository's)."""
    project = Project(Path(root).resolve())  # the processes run from the repository, not from here
    if project.root.exists():
        shutil.rmtree(project.root)
    project.root.mkdir(parents=True)
    if config is not None or not (project.config.exists()):
        shutil.copytree(config or PACKAGE_ROOT / "config", project.config)
    project.raw.mkdir(exist_ok=True)
    project.reset_state()
    return project


# ---------------------------------------------------------------------------------------
# Measuring a command
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    label: str
    wall_s: float
    peak_rss_mb: float  # largest single process (getrusage of the waited children, in bench._wrap)
    tree_rss_mb: float  # the whole process tree at its peak (sampled every 50 ms), less the wrapper
    returncode: int
    output: str = ""

    @property
    def peak_mb(self) -> float:
        return max(self.peak_rss_mb, self.tree_rss_mb)


def _tree_rss_kb(pid: int) -> int:
    """RSS of `pid` and all its descendants, from /proc (0 where /proc is unavailable)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(label: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
            echo: bool = True) -> Measure:
    """Run `cmd`; its wall time, the peak RSS of its largest process (exact, from the
    kernel's accounting of the waited child) and of its whole process tree (sampled)."""
    import tempfile

    handle, rss_file = tempfile.mkstemp(prefix="bench_rss_")
    os.close(handle)
    wrapped = [PYTHON, "-m", "bench._wrap", rss_file, "--", *cmd]
    run_env = dict(env if env is not None else os.environ)
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), run_env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    proc = subprocess.Popen(wrapped, env=run_env, cwd=cwd or PACKAGE_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.stdout.read() if proc.stdout else ""
    proc.wait()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    try:  # kB, from bench._wrap: the command's largest process
        with open(rss_file) as handle:
            peak_process = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        peak_process = 0
    finally:
        os.unlink(rss_file)
    # the tree holds the small wrapper too: take it out of the sampled figure
    wrapper_kb = 12_000
    result = Measure(label, wall, peak_process / 1024, max(peak_tree - wrapper_kb, 0) / 1024, proc.returncode, output)
    if echo:
        state = "" if result.returncode == 0 else f"  FAILED (exit {result.returncode})"
        print(f"  {label}: {result.wall_s:.1f} s, peak {result.peak_mb:.0f} MB{state}", file=sys.stderr, flush=True)
        if result.returncode != 0:
            print(output[-4000:], file=sys.stderr)
    return result


def python_step(module_args: list[str]) -> list[str]:
    return [PYTHON, *module_args]


# ---------------------------------------------------------------------------------------
# The machine and the results file
# ---------------------------------------------------------------------------------------


def _memory() -> str:
    try:
        with open("/proc/meminfo") as handle:
            total = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1])
        return f"{total / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines() -> list[str]:
    try:
        uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        uname = " ".join(platform.uname())
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return [
        f"- `uname -a`: `{uname}`",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical CPUs; memory {_memory()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); " + ", ".join(versions),
        f"- load average when this section was written: {load} (other work on the machine slows the figures)",
    ]


def fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


def fmt_mb(mb: float) -> str:
    return f"{mb:,.0f} MB".replace(",", " ") if mb < 10_000 else f"{mb / 1024:.1f} GB"


def verdict(value: float, limit: float | None) -> str:
    if limit is None:
        return "-"
    return "**met**" if value < limit else "**missed**"


HEADER = """# Benchmark results

Written by `make bench` (`python -m bench`): each benchmark rewrites its own section
below with the figures of its last run, the machine it ran on, and the targets of the
issue beside them. Nothing here is a test: a missed target is reported, not hidden.
How each figure is measured: `bench/README.md`.
"""


def write_section(name: str, title: str, body: list[str]) -> Path:
    """Replace the section `name` of bench/results.md (create the file if needed)."""
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    section = "\n".join([
        f"<!-- bench:{name} -->",
        f"## {title}",
        "",
        f"Last run: {stamp}, `python -m bench.{name}`.",
        "",
        *machine_lines(),
        "",
        *body,
        f"<!-- /bench:{name} -->",
    ])
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        order = ["suite", "excel_reading", "national"]
        text = text.rstrip("\n") + "\n\n" + section
        # keep the sections in the dispatcher's order
        blocks = {m.group(1): m.group(0) for m in re.finditer(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->", text, re.S)}
        head = re.split(r"<!-- bench:\w+ -->", text, maxsplit=1)[0].rstrip("\n")
        ordered = sorted(blocks, key=lambda k: order.index(k) if k in order else len(order))
        text = head + "\n\n" + "\n\n".join(blocks[k] for k in ordered)
    RESULTS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    return RESULTS
