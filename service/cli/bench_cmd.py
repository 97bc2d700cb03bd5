"""``vidrec bench NAME``: runs a benchmark script from the repository's ``benchmarks/``.

The scripts are not part of the installed package, so this works from a source checkout;
everything after the name is passed to the script (``vidrec bench eventful --help``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = (
    "eventful",
    "service_overhead",
    "ingest_decode",
    "clip_lengths",
    "cli_startup",
    "live",
)
SCRIPTS = Path(__file__).resolve().parents[2] / "benchmarks"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark script (prints a table, writes JSON)",
        description="Run a benchmark from benchmarks/; extra arguments go to the script.",
    )
    parser.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments of the script")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = SCRIPTS / f"{args.name}.py"
    if not path.is_file():
        raise ValueError(f"benchmark script {path} not found (run from a source checkout)")
    spec = importlib.util.spec_from_file_location(f"vidrec_bench_{args.name}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    result: int = module.main(args.script_args)
    return result
