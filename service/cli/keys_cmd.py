"""``vidrec keys new``: a fresh API key, printed once, and the line that stores it (hashed).

stdout gets two lines: the key (give it to the client, e.g. as ``VIDREC_API_KEY``), then the
``name:scopes:sha256`` line for ``VIDREC_API_KEYS_FILE`` or ``VIDREC_API_KEYS``. With ``--file``
the line is appended to that file (created readable by its owner only) and only the key is
printed. The gateway never sees or stores the key itself; see docs/SECURITY.md for rotation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from service.apikeys import SCOPES, ApiKey, check_name, hash_key, new_key, parse_lines, parse_scopes

HELP = "make an API key (printed once) and the hashed line that stores it"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys", help=HELP, description="Manage the gateway's API keys (docs/SECURITY.md)."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="print a fresh key and its line",
        description=(
            "Print a fresh API key (once: it is not stored anywhere) and the name:scopes:sha256 "
            "line the gateway reads from VIDREC_API_KEYS_FILE or VIDREC_API_KEYS."
        ),
    )
    new.add_argument("--name", required=True, help="the key's name, shown in logs and limits")
    new.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    new.add_argument(
        "--file",
        type=Path,
        help="append the line to this keys file (created with mode 600) instead of printing it",
    )
    new.set_defaults(handler=run_new)


def run_new(args: argparse.Namespace) -> int:
    name = check_name(args.name)
    scopes = parse_scopes(args.scopes)
    if args.file is not None and args.file.exists():
        taken = {k.name for k in parse_lines(args.file.read_text().splitlines(), str(args.file))}
        if name in taken:
            raise ValueError(f"{args.file} already has a key named {name!r}; choose another name")
    key = new_key()
    line = ApiKey(name, scopes, hash_key(key)).line()
    print(key, flush=True)
    if args.file is None:
        print(line, flush=True)
        print(
            "vidrec keys: the first line is the key (shown only now); add the second to "
            "VIDREC_API_KEYS_FILE or VIDREC_API_KEYS",
            file=sys.stderr,
        )
        return 0
    fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    print(
        f"vidrec keys: key {name!r} ({', '.join(sorted(scopes))}) added to {args.file}; the key "
        "above is shown only now",
        file=sys.stderr,
    )
    return 0
