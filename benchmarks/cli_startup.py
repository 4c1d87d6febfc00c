"""How long `neg` takes to answer `--help` and argument errors, measured in one run on this machine.

Run as ``python -m benchmarks.cli_startup [--repeat 5] [--baseline DIR]``. Each command runs
``--repeat`` times in a fresh interpreter (``python -m scoreboards.cli ...``); the table gives the
median wall time and the median CPU time (user + system: less sensitive than wall time to other
jobs on a shared machine). ``--baseline DIR`` also runs every command against another checkout
of the project (DIR first on ``PYTHONPATH``, e.g. ``git archive <commit> | tar -x -C DIR``) and
prints the ratio of the medians, both measured in this run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: `neg` invocations that load no training code: help pages and usage errors.
COMMANDS = (
    ["--help"],
    ["train", "--help"],
    ["bench", "--help"],
    ["submit", "--help"],
    ["train", "--no-such-option"],
    ["bench", "run", "--no-such-option"],
    ["board", "show"],
)


def measure(argv: list[str], repeat: int, root: str | Path) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of ``python -m scoreboards.cli ARGV`` with the checkout
    `root` first on the path (run from an empty folder, so the working directory shadows nothing)."""
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cwd = tempfile.mkdtemp(prefix="neg-startup-")
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scoreboards.cli", *argv], env=env, cwd=cwd, capture_output=True,
                       check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--baseline", default=None, help="another checkout to compare with (first on PYTHONPATH)")
    args = p.parse_args()
    head = f"{'neg ...':34s} {'wall s':>7s} {'cpu s':>7s}"
    if args.baseline:
        head += f" {'base wall':>9s} {'base cpu':>9s} {'cpu ratio':>9s}"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; medians of {args.repeat}")
    print(head)
    for argv in COMMANDS:
        wall, cpu = measure(argv, args.repeat, ROOT)
        line = f"{' '.join(argv):34s} {wall:7.2f} {cpu:7.2f}"
        if args.baseline:
            bwall, bcpu = measure(argv, args.repeat, args.baseline)
            line += f" {bwall:9.2f} {bcpu:9.2f} {bcpu / cpu:8.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
