"""The ``vidrec`` command line. Each subcommand lives in its own module and registers itself
with ``add_parser(subparsers)``; ``main`` dispatches.

Only the module of the command being run is imported: the others appear in ``vidrec --help``
through their one-line help in ``COMMANDS``. So ``vidrec --help``, ``vidrec client ...`` and
``vidrec gateway`` never import torch or ``model_core`` (the training and in-process commands
still do, in their own modules).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

# Command -> (its module, its help line in `vidrec --help`), in the order `--help` lists them.
# tests/service/cli/test_lazy_imports.py checks each help line against the module's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("service.cli.models_cmd", "list registered models with parameters and GMACs"),
    "train": ("service.cli.train_cmd", "train a model on generated clips and write a bundle"),
    "eval": ("service.cli.eval_cmd", "score a bundle on held-out generated clips"),
    "bench": ("service.cli.bench_cmd", "run a benchmark script (prints a table, writes JSON)"),
    "classify": ("service.cli.classify_cmd", "classify local video files in-process"),
    "stream": ("service.cli.stream_cmd", "print live labels from an RTSP URL or a video file"),
    "serve": (
        "service.cli.serve_cmd",
        "run the service: (embedded) Redis, workers and the gateway",
    ),
    "gateway": (
        "service.cli.gateway_cmd",
        "run the HTTP/WebSocket gateway (needs VIDREC_REDIS_URL)",
    ),
    "worker": ("service.cli.worker_cmd", "run a worker process (needs VIDREC_REDIS_URL)"),
    "health": (
        "service.cli.health_cmd",
        "probe the gateway or worker of this container (exit 0: healthy)",
    ),
    "keys": (
        "service.cli.keys_cmd",
        "make an API key (printed once) and the hashed line that stores it",
    ),
    "client": (
        "service.cli.client_cmd",
        "talk to a running server (upload a clip, stream a file, list models)",
    ),
    "sample": ("service.cli.sample_cmd", "write a sample clip from the synthetic action generator"),
}


def command_module(name: str) -> Any:
    """The module of command ``name`` (imported now)."""
    return importlib.import_module(COMMANDS[name][0])


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names gets its full parser (and its module
    imported), the others a stub that shows their help line. Without, every command's parser."""
    parser = argparse.ArgumentParser(
        prog="vidrec", description="Streaming video action recognition."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, (_module, help_line) in COMMANDS.items():
        if chosen is None or name == chosen:
            command_module(name).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except ValueError as exc:
        import logging

        from service.logs import status_line  # JSON where the command set JSON logging up

        message = f"vidrec {args.command}: error: {exc}"
        line = status_line(f"service.{args.command}", message, logging.ERROR)
        print(line, file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
