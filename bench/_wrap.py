"""`python -m bench._wrap OUT -- CMD...`: run CMD, then write to OUT the peak resident set
(kB) of its largest process, as the kernel accounts for waited children.

A child's peak includes what it shared with its parent before `exec`: measured from this
small process (a few MB) rather than from the benchmark's, the figure is the command's
own. Not a benchmark itself (the dispatcher skips modules starting with `_`).
"""

import resource
import subprocess
import sys


def main() -> int:
    out, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd, __doc__
    code = subprocess.run(cmd).returncode
    with open(out, "w") as handle:
        handle.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    return code


if __name__ == "__main__":
    sys.exit(main())
