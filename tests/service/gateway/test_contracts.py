"""The gateway's contracts: the OpenAPI document types every answer, unknown request fields are
refused by name on every entry point, and the bounds are the shared ones (service/limits.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from gateway_support import CLIP_MODEL, LIVE_MODEL, StandInWorker, TestClient, default_answer
from starlette.websockets import WebSocketDisconnect

from service import limits, wire

# The HTTP routes of docs/API.md (the page, the docs and the WebSockets are not in OpenAPI).
HTTP_ROUTES = {
    ("POST", "/v1/clips"),
    ("GET", "/v1/jobs/{job_id}"),
    ("POST", "/v1/streams"),
    ("GET", "/v1/streams"),
    ("GET", "/v1/streams/{session_id}"),
    ("DELETE", "/v1/streams/{session_id}"),
    ("GET", "/v1/models"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_route_documents_typed_success_and_error_answers(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    operations = _operations(doc)
    assert {(m, p) for m, p, _ in operations} == HTTP_ROUTES
    empty: list[str] = []
    for method, path, op in operations:
        statuses = {int(s) for s in op["responses"]}
        assert any(200 <= s < 300 for s in statuses), f"{method} {path}: no success answer"
        if path != "/metrics":  # text, and its refusals are the auth middleware's
            assert any(s >= 400 for s in statuses), f"{method} {path}: no error answer"
        for status, response in op["responses"].items():
            content = response.get("content") or {}
            schemas = [_resolve(doc, c.get("schema") or {}) for c in content.values()]
            if not schemas or any(not s for s in schemas):
                empty.append(f"{method} {path} {status}")
            elif int(status) >= 400 and path != "/readyz":
                assert schemas == [_resolve(doc, {"$ref": "#/components/schemas/ErrorBody"})], (
                    f"{method} {path} {status}: not the error shape"
                )
    assert not empty, f"answers without a schema: {empty}"
    # FastAPI's own validation-error shape is never sent (ours replaces it), so never documented.
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_the_documented_models_are_the_wire_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    clip = doc["paths"]["/v1/clips"]["post"]["responses"]
    assert clip["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ClipAnswer")
    assert clip["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobAccepted")
    assert set(schemas["Timing"]["required"]) == set(wire.Timing.model_fields)
    assert "fps" in schemas["VideoInfo"]["properties"]
    assert "avg_fps" not in schemas["VideoInfo"]["properties"]
    # The error object names the extra fields some codes carry.
    assert {"details", "models", "max_bytes", "retry_after_s"} <= set(
        schemas["ErrorDetail"]["properties"]
    )
    # The request bodies refuse unknown fields and carry the shared bounds.
    form = schemas["ClipForm"]
    assert form["additionalProperties"] is False
    assert form["properties"]["clips"]["maximum"] == limits.MAX_CLIPS
    assert form["properties"]["top_k"]["maximum"] == limits.MAX_TOP_K
    stream = schemas["StreamRequest"]
    assert stream["additionalProperties"] is False
    assert stream["properties"]["source"]["minLength"] == 1
    assert stream["properties"]["stride"]["anyOf"][0]["maximum"] == limits.MAX_STRIDE


def _invalid(response: Any, *names: str) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request", error
    for name in names:
        assert repr(name) in error["message"], error
    return str(error["message"])


def test_an_unknown_form_field_is_refused_by_name(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    tasks: list[Any] = []

    def answer(task: Any) -> dict[str, Any]:
        tasks.append(task)
        return default_answer(task)

    make_worker(answer=answer)
    files = {"file": ("clip.mp4", mp4, "video/mp4")}
    message = _invalid(
        client.post("/v1/clips", files=files, data={"topk": "3", "model": CLIP_MODEL}), "topk"
    )
    assert "unknown field" in message
    # Two typos: both named; the known fields are not.
    message = _invalid(client.post("/v1/clips", files=files, data={"topk": "3", "crop": "3"}))
    assert "'topk'" in message and "'crop'" in message and "model" not in message
    # The spelled-right form passes, and no job was queued by the refused ones.
    ok = client.post("/v1/clips", files=files, data={"top_k": "3", "model": CLIP_MODEL})
    assert ok.status_code == 200, ok.text
    assert len(wire.ClipAnswer.model_validate(ok.json()).labels) <= 3
    assert len(tasks) == 1 and tasks[0].params["top_k"] == 3
    assert set(tasks[0].params["probe"]) == set(wire.VideoInfo.model_fields)  # fps, one name


def test_the_clips_bound_is_the_shared_one(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker()
    files = {"file": ("clip.mp4", mp4, "video/mp4")}
    too_many = str(limits.MAX_CLIPS + 1)
    message = _invalid(client.post("/v1/clips", files=files, data={"clips": too_many}))
    assert "clips" in message and str(limits.MAX_CLIPS) in message


def test_an_unknown_json_field_is_refused_by_name(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    body = {"source": "rtsp://camera.example.com:8554/cam", "bugdet": 0.5}
    _invalid(client.post("/v1/streams", json=body), "bugdet")
    _invalid(client.post("/v1/streams", json={"source": ""}))  # empty: as the schema says
    assert client.get("/v1/streams").json()["count"] == 0


def _refused(client: TestClient, url: str) -> dict[str, Any]:
    """The error event of a socket the gateway refuses, after checking that it closes (1008)."""
    with client.websocket_connect(url) as ws:
        event: dict[str, Any] = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
    return event


def test_an_unknown_live_query_parameter_is_refused_by_name(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    event = _refused(client, f"/v1/streams/live?model={LIVE_MODEL}&bugdet=0.5")
    assert event["type"] == "error" and event["code"] == "invalid_request", event
    assert "'bugdet'" in event["message"] and "budget" in event["message"], event
    wire.ErrorEvent.model_validate(event)
    assert client.get("/v1/streams").json()["count"] == 0  # no session was opened
    # The right spelling opens a session.
    with client.websocket_connect(f"/v1/streams/live?model={LIVE_MODEL}&budget=0.5") as ws:
        first = ws.receive_json()
        assert first["type"] == "session" and first["budget"] == {"fraction": 0.5}, first
        ws.send_text(json.dumps({"type": "close"}))


def test_an_unknown_events_query_parameter_is_refused_by_name(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    with client.websocket_connect(f"/v1/streams/live?model={LIVE_MODEL}") as ws:
        session_id = ws.receive_json()["session_id"]
        event = _refused(client, f"/v1/streams/{session_id}/events?aftr=0-0")
        assert event["code"] == "invalid_request" and "'aftr'" in event["message"], event
        with client.websocket_connect(f"/v1/streams/{session_id}/events") as events:
            first = events.receive_json()
            assert first["type"] == "session" and first["session_id"] == session_id
        ws.send_text(json.dumps({"type": "close"}))


def test_an_unknown_field_of_a_live_message_is_refused_by_name(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    with client.websocket_connect(f"/v1/streams/live?model={LIVE_MODEL}&budget=0.5") as ws:
        ws.receive_json()  # the session event
        ws.send_text(json.dumps({"budget": 0.25, "stirde": 2}))
        event = ws.receive_json()
        assert event["type"] == "error" and event["code"] == "invalid_message", event
        assert "'stirde'" in event["message"], event
        # The budget part was not applied either; the right message is.
        ws.send_text(json.dumps({"budget": 0.25}))
        changed = ws.receive_json()
        assert changed["type"] == "budget" and changed["budget"] == {"fraction": 0.25}, changed
        ws.send_text(json.dumps({"type": "close"}))


def test_a_worker_answer_that_breaks_the_contract_is_relayed_and_logged(
    client: TestClient,
    make_worker: Callable[..., StandInWorker],
    mp4: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def old_worker(task: Any) -> dict[str, Any]:
        answer = default_answer(task)
        answer["timing_ms"] = {"queue": 1.0}  # a shape the contract does not know
        return answer

    make_worker(answer=old_worker)
    files = {"file": ("clip.mp4", mp4, "video/mp4")}
    with caplog.at_level("ERROR", logger="service.gateway.responses"):
        r = client.post("/v1/clips", files=files, data={"model": CLIP_MODEL})
    assert r.status_code == 200, r.text  # the work is done: it is not lost to a 500
    assert r.json()["timing_ms"] == {"queue": 1.0} and r.json()["labels"]
    assert "breaks the contract" in caplog.text and "timing_ms" in caplog.text
