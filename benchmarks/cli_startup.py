"""Benchmark of the ``vidrec`` command's start-up: wall time and heavy imports per command.

Each case runs ``vidrec ARGS`` in a fresh interpreter (``python -c`` calling ``service.cli.main``,
as the console script does) and records the wall time from spawn to exit, and which heavy
packages (torch, model_core, numpy, av) the command had imported when it finished. ``--help``
commands parse nothing further, so their time is the cost of getting to the command.

``--pythonpath DIR`` runs another checkout's ``service`` (``git archive HEAD service model_core |
tar -x -C DIR``), which is how a before/after comparison is made. Prints a table and writes JSON.
Usage::

    vidrec bench cli_startup [bench-results/cli_startup.json] [--repeats 5] [--pythonpath DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench-results" / "cli_startup.json"
HEAVY = ("torch", "model_core", "numpy", "av")
CASES: dict[str, list[str]] = {
    "vidrec --help": ["--help"],
    "vidrec client models --help": ["client", "models", "--help"],
    "vidrec client clip --help": ["client", "clip", "--help"],
    "vidrec gateway --help": ["gateway", "--help"],
    "vidrec serve --help": ["serve", "--help"],
    "vidrec models --help": ["models", "--help"],
}
# Runs the CLI with argv, then reports the heavy modules it imported on the last stderr line.
_PROBE = """\
import json, sys
from service.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr)
"""


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, list[str]]:
    """Seconds from spawn to exit, and the heavy modules the command imported."""
    code = _PROBE.format(heavy=HEAVY)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(done.stderr.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, prints the table and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pythonpath", type=Path, help="a checkout whose service/ to run")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    # `python -c` puts its working directory first on sys.path: run in the checkout measured.
    cwd = ROOT
    if args.pythonpath is not None:
        cwd = args.pythonpath.resolve()
        env["PYTHONPATH"] = str(cwd)

    results: dict[str, Any] = {}
    for name, case in CASES.items():
        times: list[float] = []
        imported: list[str] = []
        for _ in range(args.repeats):
            elapsed, imported = run_once(case, env, cwd)
            times.append(elapsed)
        results[name] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "imports": imported,
        }
    width = max(len(name) for name in results)
    print(f"{'command'.ljust(width)}  median s  min s  heavy imports")
    for name, row in results.items():
        heavy = ", ".join(row["imports"]) or "-"
        print(f"{name.ljust(width)}  {row['median_s']:8.2f}  {row['min_s']:5.2f}  {heavy}")
    record = {
        "benchmark": "cli_startup",
        "repeats": args.repeats,
        "pythonpath": str(args.pythonpath) if args.pythonpath else None,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average": os.getloadavg(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
