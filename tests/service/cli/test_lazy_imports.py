"""The ``vidrec`` command imports only the module of the command it runs, so the client, the
gateway and ``--help`` start without torch or ``model_core`` (issue 25, item 8)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from service.cli import COMMANDS, build_parser

# Runs the CLI in a fresh interpreter, then prints the heavy packages it had imported.
PROBE = """\
import json, sys
from service.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
heavy = [m for m in ("torch", "model_core") if m in sys.modules]
print(json.dumps({"status": status, "heavy": heavy}))
"""


def imported_by(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("client", "--help"),
        ("client", "models", "--help"),
        ("client", "clip", "--help"),
        ("client", "stream", "--help"),
        ("gateway", "--help"),
        ("serve", "--help"),
        ("worker", "--help"),
        ("sample", "--help"),
    ],
)
def test_light_commands_do_not_import_torch(argv: tuple[str, ...]) -> None:
    assert imported_by(*argv) == {"status": 0, "heavy": []}


def test_a_client_command_that_runs_stays_light() -> None:
    # Port 1 refuses at once: the command runs its handler, fails to connect, exits 1.
    result = imported_by("client", "models", "--url", "http://127.0.0.1:1", "--retries", "0")
    assert result == {"status": 1, "heavy": []}


def test_a_model_command_still_imports_them() -> None:
    # The probe that could fail: were the subprocess unable to see torch, the tests above
    # would pass for the wrong reason.
    assert imported_by("models", "--help")["heavy"] == ["torch", "model_core"]


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: str(choice.help) for choice in action._choices_actions}


def test_stub_help_lines_match_the_commands_own() -> None:
    full = _help_lines(build_parser())  # every module imported: their own help lines
    assert full == {name: help_line for name, (_module, help_line) in COMMANDS.items()}
    stubs = _help_lines(build_parser(["client"]))
    assert stubs == full


# Runs `vidrec gateway` to its end (SIGTERM), then prints the heavy packages it had imported.
GATEWAY_PROBE = """\
import json, sys
from service.cli import main
status = main(["gateway", "--port", "0", "--log-level", "warning"])
heavy = [m for m in ("torch", "model_core") if m in sys.modules]
print(json.dumps({"status": status, "heavy": heavy}), flush=True)
"""


def test_a_running_gateway_never_imports_torch(redis_url: str, key_prefix: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env.update({"VIDREC_REDIS_URL": redis_url, "VIDREC_KEY_PREFIX": key_prefix})
    process = subprocess.Popen(
        [sys.executable, "-c", GATEWAY_PROBE],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()  # "vidrec gateway: listening on URL"
        url = listening.split()[-1]
        # A request through the routes and middleware, so lazily imported parts are loaded too.
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads(out.strip().splitlines()[-1]) == {"status": 0, "heavy": []}, err
