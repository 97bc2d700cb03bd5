"""The ``vidrec`` command line. Each subcommand lives in its own module and registers itself
with ``add_parser(subparsers)``; ``main`` dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from service.cli import (
    bench_cmd,
    classify_cmd,
    client_cmd,
    eval_cmd,
    gateway_cmd,
    models_cmd,
    serve_cmd,
    stream_cmd,
    train_cmd,
    worker_cmd,
)

COMMANDS = (
    models_cmd,
    train_cmd,
    eval_cmd,
    bench_cmd,
    classify_cmd,
    stream_cmd,
    serve_cmd,
    gateway_cmd,
    worker_cmd,
    client_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidrec", description="Streaming video action recognition."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except ValueError as exc:
        print(f"vidrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
