"""Logs: one JSON object per line (or text), with the request id, and nothing secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from service.apikeys import new_key
from service.logs import configure_logging, redact, request_id_var


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Puts the root logger back as pytest had it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers = handlers
    root.setLevel(level)


def _records(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_json_lines_carry_the_request_id_and_the_request_fields(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("service.gateway.access").info(
            "GET /v1/jobs/x 200",
            extra={"route": "/v1/jobs/{job_id}", "status": 200, "duration_ms": 1.5},
        )
    finally:
        request_id_var.reset(token)
    logging.getLogger("service.worker").warning("no request here: %d", 7)
    first, second = _records(capsys.readouterr().err)
    assert set(first) >= {"time", "level", "logger", "message", "request_id"}
    assert first["request_id"] == "req-123" and first["level"] == "info"
    assert (first["route"], first["status"], first["duration_ms"]) == (
        "/v1/jobs/{job_id}",
        200,
        1.5,
    )
    assert first["logger"] == "service.gateway.access"
    assert second["message"] == "no request here: 7" and second["request_id"] is None


def test_keys_and_bearer_credentials_are_redacted_everywhere(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    key = new_key()
    log = logging.getLogger("service.test")
    log.info("presented %s", key)
    log.info("headers %s", {"authorization": f"Bearer {key[4:]}"})
    log.info("subprotocols %s", ["vidrec", f"bearer.{key[4:]}"])
    try:
        raise RuntimeError(f"Authorization: Bearer {key}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert key not in err and key[4:] not in err and key[10:30] not in err
    assert err.count("[redacted]") >= 4
    assert len(_records(err)) == 4


def test_text_format_and_switching_back(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    configure_logging("text")  # replaces its own handler: one line per record, not two
    logging.getLogger("service.test").warning("hello", extra={"status": 429})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING service.test: hello status=429")


def test_payload_loggers_stay_quiet_at_debug(restore_logging: None) -> None:
    configure_logging("json", "DEBUG")
    assert logging.getLogger().level == logging.DEBUG
    # websockets prints frame payloads at DEBUG.
    assert not logging.getLogger("websockets.server").isEnabledFor(logging.DEBUG)


def test_redact_leaves_plain_text_alone() -> None:
    assert redact("GET /v1/clips 200 in 3 ms") == "GET /v1/clips 200 in 3 ms"
