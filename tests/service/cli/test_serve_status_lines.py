"""``vidrec serve``'s status lines (stderr) and listening line (stdout) are JSON log records with
``VIDREC_LOG_FORMAT=json`` and the plain lines they always were in text."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from service.cli import main
from service.cli.gateway_cmd import announce
from service.cli.serve_cmd import say
from service.logs import configure_logging

URL = "http://127.0.0.1:8123"


def records(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (fails on a line that is not one)."""
    lines = text.splitlines()
    assert lines, "no output"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) and "message" in p for p in parsed), parsed
    return parsed


def test_json_mode_status_and_listening_lines_are_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "WARNING")  # serve runs with --log-level warning in the benchmarks
    say("worker 1 started (pid 123)")
    say("worker 1 (pid 123) exited with status 1; restarting it in 1 s", logging.WARNING)
    announce(URL, "serve")
    captured = capsys.readouterr()
    err, out = records(captured.err), records(captured.out)
    assert [r["message"] for r in err] == [
        "vidrec serve: worker 1 started (pid 123)",
        "vidrec serve: worker 1 (pid 123) exited with status 1; restarting it in 1 s",
    ]  # printed whatever the level: the INFO line about the API docs is below WARNING
    assert [r["level"] for r in err] == ["info", "warning"]
    assert {r["logger"] for r in err} == {"service.serve"}
    assert [r["message"] for r in out] == [f"vidrec serve: listening on {URL}"]


def test_text_mode_lines_are_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "WARNING")
    say("worker 1 started (pid 123)")
    announce(URL, "serve")
    captured = capsys.readouterr()
    assert captured.err == "vidrec serve: worker 1 started (pid 123)\n"
    assert captured.out == f"vidrec serve: listening on {URL}\n"


def test_serve_in_json_mode_writes_only_records(
    tiny_models: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stops before anything starts (its Redis does not answer): the error line is a record too.
    monkeypatch.setenv("VIDREC_LOG_FORMAT", "json")
    monkeypatch.setenv("VIDREC_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["serve", "--port", "0", "--models-dir", str(tiny_models)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (error,) = [r for r in records(captured.err) if r["level"] == "error"]
    assert error["logger"] == "service.serve"
    assert error["message"].startswith("vidrec serve: error: the Redis server at")
    assert logging.getLogger().level == logging.INFO  # --log-level info, set up before the error
