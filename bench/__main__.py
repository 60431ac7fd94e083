"""`python -m bench [NAME...]`: run every benchmark of bench/ (each module exposing `main()`), or the named ones."""

import importlib
import pkgutil
import sys
from pathlib import Path


# The fast CABBALR benchmarks first, the national scale (the longest) last.
ORDER = ("suite", "excel_reading", "tauargus_compare", "national")


def main(argv: list[str]) -> int:
    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    names = argv or sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER) - 0.5, n))
    status = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if callable(getattr(module, "main", None)):
            print(f"== bench.{name}", file=sys.stderr, flush=True)
            sys.argv = [f"bench.{name}"]  # each benchmark runs with its own defaults
            status |= int(module.main() or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
