"""Stream sessions through the gateway: the live WebSocket, RTSP sessions and event streams."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from gateway_support import LIVE_MODEL, LIVE_RECOMMENDED_BUDGET, StandInWorker, TestClient
from PIL import Image

from service.keys import Keys
from service.redis_conn import sync_client
from service.settings import Settings


def _jpeg(value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _until(ws: Any, kind: str, limit: int = 50) -> dict[str, Any]:
    """The next event of ``kind``, skipping others, without the request id every event has."""
    for _ in range(limit):
        event: dict[str, Any] = ws.receive_json()
        assert event.pop("request_id"), event  # the gateway's id of the connection
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} event")


def test_live_stream_routes_frames_and_relays_events(
    client: TestClient, settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    worker = make_worker()
    url = f"/v1/streams/live?model={LIVE_MODEL}&budget=0.5&stride=2"
    with client.websocket_connect(url) as ws:
        session = ws.receive_json()
        assert session["type"] == "session"
        assert session["model"] == LIVE_MODEL
        assert session["owner"] == "w1"
        assert session["budget"] == {"fraction": 0.5}
        assert session["stride"] == 2
        assert session["window"] == 4
        session_id = session["session_id"]

        frame = b'{"timestamp": 1.5, "index": 7}\n' + _jpeg()
        ws.send_bytes(frame)
        ws.send_bytes(_jpeg(10))
        labels = _until(ws, "labels")
        assert labels["session_id"] == session_id
        assert labels["frame_index"] == 0
        assert labels["event_id"]
        assert _until(ws, "labels")["frame_index"] == 1

        frames = worker.wait_for(lambda ms: sum(m.type == "frame" for m in ms) == 2)
        sent = [m for m in frames if m.type == "frame"]
        assert frames[0].type == "open"
        assert sent[0].data == frame  # the message as sent: the worker decodes it
        assert [m.index for m in sent] == [0, 1]
        assert sent[0].received_s is not None and sent[0].received_s > 0

        ws.send_text(json.dumps({"budget": {"tokens": 20}}))
        assert _until(ws, "budget")["budget"] == {"tokens": 20}
        messages = worker.wait_for(lambda ms: any(m.type == "budget" for m in ms))
        assert next(m for m in messages if m.type == "budget").budget == {"tokens": 20}

        ws.send_text("{not json")
        error = _until(ws, "error")
        assert error["code"] == "invalid_message"
        ws.send_text(json.dumps({"budget": {"fraction": 3}}))
        assert _until(ws, "error")["code"] == "invalid_budget"
        # an input gate rides with a threshold budget, and only there
        gated = {"threshold": 1.5, "input": 2.5}
        ws.send_text(json.dumps({"budget": gated}))
        assert _until(ws, "budget")["budget"] == gated
        ws.send_text(json.dumps({"budget": {"tokens": 5, "input": 2.5}}))
        assert _until(ws, "error")["code"] == "invalid_budget"
        # the stream goes on after errors
        ws.send_bytes(_jpeg(20))
        assert _until(ws, "labels")["frame_index"] == 2

        state = client.get(f"/v1/streams/{session_id}").json()
        assert state["state"] == "running"
        assert state["counters"]["frames_received"] == 3
        assert state["latest"]["type"] == "labels"
        assert state["stride"] == 2

        ws.send_text(json.dumps({"type": "close"}))
        assert _until(ws, "closed")["session_id"] == session_id
    worker.wait_for(lambda ms: any(m.type == "close" for m in ms))
    assert client.get(f"/v1/streams/{session_id}").json()["state"] == "closed"


def test_live_stream_refuses_bad_frames_without_ending(
    client: TestClient, settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    with client.websocket_connect("/v1/streams/live") as ws:
        session = ws.receive_json()
        assert session["model"] == LIVE_MODEL  # the catalog's live default
        # No budget asked for and none configured: the one the model's bundle recommends.
        assert session["budget"] == LIVE_RECOMMENDED_BUDGET
        ws.send_bytes(b"\0" * (settings.frame_max_bytes + 1))
        error = _until(ws, "error")
        assert error["code"] == "frame_too_large"
        # named like the worker's refusals: the gateway's index of the frame, not frame_index
        # (which in labels events counts the frames the model processed)
        assert error["input_index"] == 0 and "frame_index" not in error
        assert error["session_id"] == session["session_id"]
        ws.send_bytes(b'{"index": -1}\n' + _jpeg())
        error = _until(ws, "error")
        assert error["code"] == "malformed_frame"
        assert error["input_index"] == 1
        ws.send_bytes(_jpeg())
        assert _until(ws, "labels")["frame_index"] == 2
    metrics = client.get("/metrics").text
    assert 'vidrec_frames_received_total{kind="live"} 3.0' in metrics
    assert 'vidrec_frames_dropped_total{reason="frame_too_large"} 1.0' in metrics


def test_disconnect_closes_the_session(
    client: TestClient, settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    worker = make_worker()
    with client.websocket_connect("/v1/streams/live") as ws:
        session_id = ws.receive_json()["session_id"]
    worker.wait_for(lambda ms: any(m.type == "close" for m in ms))
    assert client.get(f"/v1/streams/{session_id}").json()["state"] == "closed"


def test_live_stream_without_a_worker_says_why(client: TestClient) -> None:
    with client.websocket_connect("/v1/streams/live") as ws:
        event = ws.receive_json()
        assert event["type"] == "error"
        assert event["code"] == "no_worker"
        assert "live worker" in event["message"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("model=nope", "unknown_model"),
        ("budget=7", "invalid_request"),
        ("budget=%7B%22tokens%22%3A0%7D", "invalid_request"),
        ("stride=0", "invalid_request"),
    ],
)
def test_live_stream_refuses_bad_parameters(
    client: TestClient, make_worker: Callable[..., StandInWorker], query: str, code: str
) -> None:
    make_worker()
    with client.websocket_connect(f"/v1/streams/live?{query}") as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["code"] == code, event


def test_the_deployments_default_budget_wins_over_the_models(
    redis_url: str, key_prefix: str, make_worker: Callable[..., StandInWorker]
) -> None:
    from service.gateway import create_app

    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        allow_private_sources=True,
        default_budget='{"tokens": 7}',  # as VIDREC_DEFAULT_BUDGET gives it
    )
    make_worker(settings=settings)
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect("/v1/streams/live") as ws:
            assert ws.receive_json()["budget"] == {"tokens": 7}
        created = client.post("/v1/streams", json={"source": "rtsp://127.0.0.1:8554/cam"})
        assert created.status_code == 201, created.text
        assert created.json()["budget"] == {"tokens": 7}
        # A budget the client names still wins over both.
        with client.websocket_connect("/v1/streams/live?budget=all") as ws:
            assert ws.receive_json()["budget"] == {"keep_all": True}
    assert LIVE_RECOMMENDED_BUDGET != {"tokens": 7}


def test_rtsp_session_created_read_and_deleted(
    redis_url: str, key_prefix: str, make_worker: Callable[..., StandInWorker]
) -> None:
    from service.gateway import create_app

    settings = Settings(redis_url=redis_url, key_prefix=key_prefix, allow_private_sources=True)
    worker = make_worker(settings=settings)
    with TestClient(create_app(settings)) as client:
        body = {"source": "rtsp://user:secret@127.0.0.1:8554/cam", "budget": {"tokens": 10}}
        response = client.post("/v1/streams", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        session_id = created["session_id"]
        assert created["kind"] == "rtsp"
        assert created["model"] == LIVE_MODEL
        assert created["budget"] == {"tokens": 10}
        assert "secret" not in response.text
        worker.wait_for(lambda ms: any(m.type == "open" for m in ms))
        # the owner reads the full URL from the session record
        raw = sync_client(redis_url)
        try:
            stored = raw.hget(Keys.from_settings(settings).session(session_id), "source_url")
        finally:
            raw.close()
        assert stored == b"rtsp://user:secret@127.0.0.1:8554/cam"

        info = client.get(f"/v1/streams/{session_id}").json()
        assert info["state"] == "running"
        assert info["source"] == "rtsp://user:***@127.0.0.1:8554/cam"
        assert info["counters"] == {
            "frames_received": 0,
            "frames_processed": 0,
            "frames_dropped": 0,
            "frames_lost": 0,
        }

        # events: published by the owner, read from the start and resumed after an id
        ids = [worker.inbox.publish(session_id, {"type": "source", "state": s}) for s in "abc"]
        with client.websocket_connect(f"/v1/streams/{session_id}/events") as ws:
            assert ws.receive_json()["type"] == "session"
            assert [ws.receive_json()["event_id"] for _ in range(3)] == ids
        with client.websocket_connect(f"/v1/streams/{session_id}/events?after={ids[0]}") as ws:
            assert [ws.receive_json()["state"] for _ in range(2)] == ["b", "c"]

        deleted = client.delete(f"/v1/streams/{session_id}")
        assert deleted.status_code == 200
        assert deleted.json()["state"] == "closed"
        worker.wait_for(lambda ms: any(m.type == "close" for m in ms))
        # a closed session's events can still be read, and the stream ends
        with client.websocket_connect(f"/v1/streams/{session_id}/events?after={ids[1]}") as ws:
            assert ws.receive_json()["state"] == "c"
            end = {"type": "end", "session_id": session_id, "state": "closed", "reason": "closed"}
            got = ws.receive_json()
            assert got.pop("request_id")  # the gateway's id of this connection
            assert got == end


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_rtsp_refuses_denied_and_malformed_urls(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    # loopback and private addresses are denied by default; link-local (cloud metadata) always
    for url in (
        "rtsp://127.0.0.1/cam",
        "rtsp://10.0.0.5:554/stream",
        "rtsp://169.254.169.254/latest",
    ):
        message = _error(
            client.post("/v1/streams", json={"source": url}), 403, "source_url_forbidden"
        )
        assert "not allowed" in message
    for url in ("file:///etc/passwd", "http://example.com/a", "rtsp://"):
        _error(client.post("/v1/streams", json={"source": url}), 400, "invalid_source_url")
    _error(client.post("/v1/streams", json={}), 422, "invalid_request")
    _error(
        client.post("/v1/streams", json={"source": "rtsp://8.8.8.8/a", "stride": 0}),
        422,
        "invalid_request",
    )
    _error(
        client.post("/v1/streams", json={"source": "rtsp://8.8.8.8/a", "budget": {"x": 1}}),
        422,
        "invalid_request",
    )
    # A word that is not a budget is named in the answer, with the forms that are.
    message = _error(
        client.post("/v1/streams", json={"source": "rtsp://8.8.8.8/a", "budget": "most"}),
        422,
        "invalid_request",
    )
    assert "'most'" in message and "'all'" in message and "threshold" in message


def test_unknown_sessions(client: TestClient) -> None:
    _error(client.get("/v1/streams/nope"), 404, "session_not_found")
    _error(client.delete("/v1/streams/nope"), 404, "session_not_found")
    with client.websocket_connect("/v1/streams/nope/events") as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["code"] == "session_not_found"
    with client.websocket_connect("/v1/streams/nope/events?after=bogus") as ws:
        assert ws.receive_json()["code"] == "invalid_request"


def test_the_listing_shows_live_and_rtsp_sessions_and_delete_ends_a_live_one(
    redis_url: str, key_prefix: str, make_worker: Callable[..., StandInWorker]
) -> None:
    from service.gateway import create_app

    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        allow_private_sources=True,
        session_lease_s=1.5,
    )
    keys = Keys.from_settings(settings)
    make_worker(settings=settings)
    raw = sync_client(redis_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/streams").json() == {"sessions": [], "count": 0}
        rtsp = client.post("/v1/streams", json={"source": "rtsp://127.0.0.1:8554/cam"}).json()
        with client.websocket_connect("/v1/streams/live") as ws:
            live_id = ws.receive_json()["session_id"]
            listed = client.get("/v1/streams").json()
            assert listed["count"] == 2
            assert [(s["session_id"], s["kind"]) for s in listed["sessions"]] == [
                (rtsp["session_id"], "rtsp"),
                (live_id, "live"),
            ]
            # The connection holds the live session's lease and keeps renewing it.
            assert raw.exists(keys.lease(live_id))
            assert not raw.exists(keys.lease(rtsp["session_id"]))
            time.sleep(2 * settings.session_lease_s)
            assert raw.pttl(keys.lease(live_id)) > 0

            deleted = client.delete(f"/v1/streams/{live_id}")
            assert deleted.status_code == 200 and deleted.json()["closed_now"] is True
            assert _until(ws, "end") == {
                "type": "end",
                "session_id": live_id,
                "state": "closed",
                "reason": "closed",
            }
        assert not raw.exists(keys.lease(live_id))
        listed = client.get("/v1/streams").json()
        assert [s["session_id"] for s in listed["sessions"]] == [rtsp["session_id"]]
    raw.close()
