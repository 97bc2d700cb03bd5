"""Stream sessions and clip jobs belong to the key that created them (in-process gateways, a real
Redis).

With auth on, a key lists, reads, stops and follows only its own sessions, and reads only its own
clip jobs; another key's session or job answers exactly as an unknown one (404
``session_not_found``, ``job_not_found``); an admin key sees every one. Records without an owner
(older ones) are for admin keys only. With auth off every caller, from any address, sees every
session and every job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gateway_support import CLIP_MODEL, StandInWorker, TestClient

from service.apikeys import ApiKey, hash_key, new_key
from service.gateway import create_app
from service.keys import Keys
from service.redis_conn import sync_client
from service.settings import Settings

pytestmark = pytest.mark.integration

KEYS = {name: new_key() for name in ("alice", "bob", "root")}
SCOPES = {"alice": {"live", "rtsp", "clips"}, "bob": {"live", "rtsp", "clips"}, "root": {"admin"}}
RTSP = {"source": "rtsp://127.0.0.1:8554/cam"}


def _bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def open_settings(settings: Settings) -> Settings:
    """Auth off, private RTSP sources allowed (the tests' camera URL is on loopback)."""
    return settings.model_copy(update={"allow_private_sources": True, "auth": "off"})


@pytest.fixture
def auth_settings(open_settings: Settings) -> Settings:
    lines = [ApiKey(n, frozenset(SCOPES[n]), hash_key(k)).line() for n, k in KEYS.items()]
    return open_settings.model_copy(update={"auth": "on", "api_keys": ";".join(lines)})


@pytest.fixture
def auth_client(auth_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(auth_settings)) as c:
        yield c


def _unknown(response: Any, code: str, message: str) -> None:
    """A 404 worded exactly as for an unknown id (the request id aside)."""
    assert response.status_code == 404, response.text
    error = dict(response.json()["error"])
    assert error.pop("request_id") == response.headers["x-request-id"]
    assert error == {"code": code, "message": message}


def _not_found(response: Any, session_id: str) -> None:
    """The answer to an unknown session."""
    _unknown(response, "session_not_found", f"no session {session_id!r} (unknown or expired)")


def _events_refused(client: TestClient, session_id: str, name: str) -> None:
    with client.websocket_connect(f"/v1/streams/{session_id}/events", headers=_bearer(name)) as ws:
        event = ws.receive_json()
    assert event["type"] == "error" and event["code"] == "session_not_found", event
    assert event["message"] == f"no session {session_id!r} (unknown or expired)"


def _listed(client: TestClient, name: str | None = None) -> list[str]:
    response = client.get("/v1/streams", headers=_bearer(name) if name else None)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["sessions"])
    return [s["session_id"] for s in body["sessions"]]


def _raw(settings: Settings) -> Any:
    assert settings.redis_url is not None
    return sync_client(settings.redis_url)


def _opened_by(settings: Settings, session_id: str) -> Any:
    raw = _raw(settings)
    try:
        return raw.hget(Keys.from_settings(settings).session(session_id), "opened_by")
    finally:
        raw.close()


def test_a_key_sees_and_stops_only_its_own_sessions(
    auth_client: TestClient,
    auth_settings: Settings,
    make_worker: Callable[..., StandInWorker],
) -> None:
    worker = make_worker(settings=auth_settings)
    created = auth_client.post("/v1/streams", json=RTSP, headers=_bearer("alice"))
    assert created.status_code == 201, created.text
    rtsp_id = created.json()["session_id"]
    assert "opened_by" not in created.json() and "alice" not in created.text
    assert _opened_by(auth_settings, rtsp_id) == b"key:alice"
    worker.wait_for(lambda ms: any(m.type == "open" for m in ms))

    # bob: nothing listed, and alice's session answers as an unknown one would
    assert _listed(auth_client, "bob") == []
    _not_found(auth_client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("bob")), rtsp_id)
    _not_found(auth_client.delete(f"/v1/streams/{rtsp_id}", headers=_bearer("bob")), rtsp_id)
    _events_refused(auth_client, rtsp_id, "bob")
    unknown = "0" * 32
    _not_found(auth_client.get(f"/v1/streams/{unknown}", headers=_bearer("bob")), unknown)
    # bob's DELETE stopped nothing
    assert auth_client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("alice")).json()["state"] in (
        "opening",
        "running",
    )
    assert not any(m.type == "close" for m in worker.messages)

    # alice: listed, readable, followable
    assert _listed(auth_client, "alice") == [rtsp_id]
    got = auth_client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("alice"))
    assert got.status_code == 200 and "opened_by" not in got.json()
    with auth_client.websocket_connect(
        f"/v1/streams/{rtsp_id}/events", headers=_bearer("alice")
    ) as ws:
        assert ws.receive_json()["type"] == "session"

    # a live session bob opens is his: alice does not see it, bob sees only it, admin sees both
    with auth_client.websocket_connect("/v1/streams/live", headers=_bearer("bob")) as ws:
        live_id = ws.receive_json()["session_id"]
        assert _opened_by(auth_settings, live_id) == b"key:bob"
        assert _listed(auth_client, "bob") == [live_id]
        assert _listed(auth_client, "alice") == [rtsp_id]
        _not_found(auth_client.get(f"/v1/streams/{live_id}", headers=_bearer("alice")), live_id)
        assert _listed(auth_client, "root") == [rtsp_id, live_id]

    # admin: reads and stops alice's session
    assert auth_client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("root")).status_code == 200
    deleted = auth_client.delete(f"/v1/streams/{rtsp_id}", headers=_bearer("root"))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["closed_now"] is True and deleted.json()["state"] == "closed"
    worker.wait_for(lambda ms: any(m.type == "close" and m.session_id == rtsp_id for m in ms))
    # the ended session stays alice's: still hidden from bob, readable by alice
    _not_found(auth_client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("bob")), rtsp_id)
    ended = auth_client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("alice"))
    assert ended.json()["state"] == "closed"


def test_the_opener_deletes_its_own_session(
    auth_client: TestClient,
    auth_settings: Settings,
    make_worker: Callable[..., StandInWorker],
) -> None:
    make_worker(settings=auth_settings)
    rtsp_id = auth_client.post("/v1/streams", json=RTSP, headers=_bearer("alice")).json()[
        "session_id"
    ]
    deleted = auth_client.delete(f"/v1/streams/{rtsp_id}", headers=_bearer("alice"))
    assert deleted.status_code == 200 and deleted.json()["closed_now"] is True
    assert _listed(auth_client, "alice") == []


def test_a_record_without_an_opener_is_for_admin_only(
    auth_settings: Settings,
    open_settings: Settings,
    make_worker: Callable[..., StandInWorker],
) -> None:
    """Sessions recorded before openers were kept stay readable: by admin keys (and by anyone
    with auth off)."""
    make_worker(settings=auth_settings)
    with TestClient(create_app(auth_settings)) as client:
        rtsp_id = client.post("/v1/streams", json=RTSP, headers=_bearer("alice")).json()[
            "session_id"
        ]
        raw = _raw(auth_settings)
        try:
            raw.hdel(Keys.from_settings(auth_settings).session(rtsp_id), "opened_by")
        finally:
            raw.close()
        assert _listed(client, "alice") == []
        _not_found(client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("alice")), rtsp_id)
        _events_refused(client, rtsp_id, "alice")
        assert _listed(client, "root") == [rtsp_id]
        assert client.get(f"/v1/streams/{rtsp_id}", headers=_bearer("root")).status_code == 200
    with TestClient(create_app(open_settings)) as client:
        assert _listed(client) == [rtsp_id]


def test_with_auth_off_every_address_sees_every_session(
    open_settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    """A laptop's CLI from another address (another gateway replica, even) still sees, follows
    and stops what the first one opened."""
    worker = make_worker(settings=open_settings)
    with (
        TestClient(create_app(open_settings), client=("192.0.2.1", 40000)) as first,
        TestClient(create_app(open_settings), client=("192.0.2.2", 40001)) as second,
    ):
        rtsp_id = first.post("/v1/streams", json=RTSP).json()["session_id"]
        assert _opened_by(open_settings, rtsp_id) == b"addr:192.0.2.1"
        with second.websocket_connect("/v1/streams/live") as ws:
            live_id = ws.receive_json()["session_id"]
            assert _listed(first) == [rtsp_id, live_id]
            assert _listed(second) == [rtsp_id, live_id]
        assert second.get(f"/v1/streams/{rtsp_id}").status_code == 200
        with second.websocket_connect(f"/v1/streams/{rtsp_id}/events") as ws:
            assert ws.receive_json()["type"] == "session"
        deleted = second.delete(f"/v1/streams/{rtsp_id}")
        assert deleted.status_code == 200 and deleted.json()["closed_now"] is True
        worker.wait_for(lambda ms: any(m.type == "close" and m.session_id == rtsp_id for m in ms))


# Clip jobs: the same rule, through GET /v1/jobs/{id} (the only per-job route).


def _post_clip(client: TestClient, mp4: bytes, name: str | None = None) -> str:
    """Submits ``mp4`` (waiting for the stand-in worker's answer); returns the job id."""
    response = client.post(
        "/v1/clips",
        files={"file": ("clip.mp4", mp4, "video/mp4")},
        data={"model": CLIP_MODEL},
        headers=_bearer(name) if name else None,
    )
    assert response.status_code == 200, response.text
    assert "submitted_by" not in response.json() and (name is None or name not in response.text)
    job_id: str = response.json()["job_id"]
    return job_id


def _job_not_found(response: Any, job_id: str) -> None:
    """The answer to an unknown job."""
    _unknown(response, "job_not_found", f"no clip job {job_id!r} (unknown or expired)")


def _job(client: TestClient, job_id: str, name: str | None = None) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}", headers=_bearer(name) if name else None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["job_id"] == job_id and body["status"] == "done"
    assert "submitted_by" not in body and (name is None or name not in response.text)
    return body


def _submitted_by(settings: Settings, job_id: str) -> Any:
    raw = _raw(settings)
    try:
        return raw.hget(Keys.from_settings(settings).job(job_id), "submitted_by")
    finally:
        raw.close()


def test_a_key_reads_only_its_own_jobs(
    auth_client: TestClient,
    auth_settings: Settings,
    make_worker: Callable[..., StandInWorker],
    mp4: bytes,
) -> None:
    make_worker(settings=auth_settings)
    job_id = _post_clip(auth_client, mp4, "alice")
    assert _submitted_by(auth_settings, job_id) == b"key:alice"

    # bob: alice's job answers as an unknown one would
    _job_not_found(auth_client.get(f"/v1/jobs/{job_id}", headers=_bearer("bob")), job_id)
    unknown = "0" * 32
    _job_not_found(auth_client.get(f"/v1/jobs/{unknown}", headers=_bearer("bob")), unknown)

    # alice and an admin key read it
    assert _job(auth_client, job_id, "alice")["result"]["labels"]
    assert _job(auth_client, job_id, "root") == _job(auth_client, job_id, "alice")

    # bob's own job is his: alice does not see it
    bobs = _post_clip(auth_client, mp4, "bob")
    assert _submitted_by(auth_settings, bobs) == b"key:bob"
    _job(auth_client, bobs, "bob")
    _job_not_found(auth_client.get(f"/v1/jobs/{bobs}", headers=_bearer("alice")), bobs)


def test_a_job_without_a_submitter_is_for_admin_only(
    auth_settings: Settings,
    open_settings: Settings,
    make_worker: Callable[..., StandInWorker],
    mp4: bytes,
) -> None:
    """Jobs recorded before submitters were kept stay readable: by admin keys (and by anyone
    with auth off)."""
    make_worker(settings=auth_settings)
    with TestClient(create_app(auth_settings)) as client:
        job_id = _post_clip(client, mp4, "alice")
        raw = _raw(auth_settings)
        try:
            raw.hdel(Keys.from_settings(auth_settings).job(job_id), "submitted_by")
        finally:
            raw.close()
        _job_not_found(client.get(f"/v1/jobs/{job_id}", headers=_bearer("alice")), job_id)
        _job(client, job_id, "root")
    with TestClient(create_app(open_settings)) as client:
        _job(client, job_id)


def test_with_auth_off_every_address_sees_every_job(
    open_settings: Settings, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker(settings=open_settings)
    with (
        TestClient(create_app(open_settings), client=("192.0.2.1", 40000)) as first,
        TestClient(create_app(open_settings), client=("192.0.2.2", 40001)) as second,
    ):
        job_id = _post_clip(first, mp4)
        assert _submitted_by(open_settings, job_id) == b"addr:192.0.2.1"
        assert _job(second, job_id) == _job(first, job_id)
