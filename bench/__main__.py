"""`python -m bench [NAME [OPTION...]]...`: run every benchmark of bench/ (each module
exposing `main()`), or the named ones, each with the options written after its name
(`python -m bench national --communes 300 --no-write`)."""

import importlib
import pkgutil
import sys
from pathlib import Path

# The fast CABBALR benchmarks first, the national scale (the longest) last.
ORDER = ("suite", "excel_reading", "tauargus_compare", "national")


def benchmarks() -> list[str]:
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER) - 0.5, n))


def parse(argv: list[str], names: list[str]) -> list[tuple[str, list[str]]]:
    """The benchmarks to run, each with its options: a word naming a benchmark starts a new
    one, every other word is an option (or an option's value) of the benchmark before it."""
    if not argv:
        return [(name, []) for name in names]
    if argv[0] not in names:
        raise SystemExit(f"usage: python -m bench [NAME [OPTION...]]...; {argv[0]!r} is not a benchmark "
                         f"(one of: {', '.join(names)})")
    runs: list[tuple[str, list[str]]] = []
    for word in argv:
        if word in names:
            runs.append((word, []))
        else:
            runs[-1][1].append(word)
    return runs


def main(argv: list[str]) -> int:
    status = 0
    for name, options in parse(argv, benchmarks()):
        module = importlib.import_module(f"bench.{name}")
        if callable(getattr(module, "main", None)):
            print(f"== bench.{name}" + (f" {' '.join(options)}" if options else ""), file=sys.stderr, flush=True)
            sys.argv = [f"bench.{name}", *options]  # each benchmark parses its own options (defaults if none)
            status |= int(module.main() or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
