"""Request ids, CORS and Origin, rate limits and quotas (in-process; a real Redis)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gateway_support import LIVE_MODEL, StandInWorker, TestClient
from starlette.testclient import WebSocketDenialResponse

from service.apikeys import ApiKey, hash_key, new_key
from service.gateway import create_app
from service.settings import Settings

pytestmark = pytest.mark.integration


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# Request ids.


def test_every_answer_has_a_request_id_and_a_plain_one_is_kept(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    kept = client.get("/healthz", headers={"X-Request-ID": "trace-42.a_b"})
    assert kept.headers["x-request-id"] == "trace-42.a_b"
    for hostile in ("x" * 65, "a b", "id\twith\ttabs", "é".encode(), "<script>"):
        replaced = client.get("/healthz", headers={"X-Request-ID": hostile})
        assert replaced.headers["x-request-id"] != hostile
        assert len(replaced.headers["x-request-id"]) == 32


def test_error_bodies_carry_the_request_id(client: TestClient) -> None:
    for response in (
        client.get("/v1/jobs/nope", headers={"X-Request-ID": "mine"}),  # a route's refusal
        client.get("/nowhere"),  # Starlette's 404
        client.post("/v1/streams", json={"source": 5}),  # validation
        client.delete("/healthz"),  # 405
    ):
        assert response.status_code >= 400
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert (
        client.get("/v1/jobs/nope", headers={"X-Request-ID": "mine"}).json()["error"]["request_id"]
        == "mine"
    )


def test_live_events_carry_the_connections_request_id(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    url = f"/v1/streams/live?model={LIVE_MODEL}"
    with client.websocket_connect(url, headers={"X-Request-ID": "cam-7"}) as ws:
        session = ws.receive_json()
        ws.send_text("{not json")
        error = ws.receive_json()  # the gateway's own event
        ws.send_bytes(b"\xff\xd8 a frame")
        labels = ws.receive_json()  # relayed from the worker
    assert session["type"] == "session" and session["request_id"] == "cam-7"
    assert error["type"] == "error" and error["request_id"] == "cam-7"
    assert labels["type"] == "labels" and labels["request_id"] == "cam-7"


# CORS and Origin.


def test_cross_origin_is_refused_by_default_and_same_origin_works(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    evil = {"Origin": "https://evil.example"}
    _error(client.get("/v1/models", headers=evil), 403, "origin_not_allowed")
    preflight = client.options(
        "/v1/models", headers={**evil, "Access-Control-Request-Method": "GET"}
    )
    error = _error(preflight, 400, "cors_refused")
    assert "VIDREC_CORS_ORIGINS" in error["message"]
    assert "access-control-allow-origin" not in preflight.headers
    # the gateway's own page (TestClient's host is testserver) and clients without Origin pass
    assert client.get("/v1/models", headers={"Origin": "http://testserver"}).status_code == 200
    assert client.get("/v1/models").status_code == 200
    assert client.get("/healthz", headers=evil).status_code == 200  # not an API route
    url = f"/v1/streams/live?model={LIVE_MODEL}"
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect(url, headers=evil),
    ):
        pass
    assert denied.value.status_code == 403
    assert denied.value.json()["error"]["code"] == "origin_not_allowed"
    with client.websocket_connect(url, headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "session"


def test_listed_origins_get_cors_headers_and_websockets(
    settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    app_origin = "https://app.example:8443"
    listed = settings.model_copy(update={"cors_origins": [app_origin]})
    with TestClient(create_app(listed)) as client:
        preflight = client.options(
            "/v1/clips",
            headers={
                "Origin": app_origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, x-request-id",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == app_origin
        answer = client.get("/v1/models", headers={"Origin": app_origin})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == app_origin
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
        url = f"/v1/streams/live?model={LIVE_MODEL}"
        with client.websocket_connect(url, headers={"Origin": app_origin}) as ws:
            assert ws.receive_json()["type"] == "session"
        _error(
            client.get("/v1/models", headers={"Origin": "https://app.example"}),  # other port
            403,
            "origin_not_allowed",
        )


def test_a_bad_origin_setting_fails_with_its_name() -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        Settings(cors_origins="https://app.example/path")
    assert Settings(cors_origins="https://A.example, http://b:8080/").cors_origins == [
        "https://a.example",
        "http://b:8080",
    ]


# Rate limits and quotas.


def test_requests_over_the_rate_get_429_with_retry_after(settings: Settings) -> None:
    slow = settings.model_copy(update={"rate_limit_rps": 0.2, "rate_limit_burst": 3})
    with TestClient(create_app(slow)) as client:
        statuses = [client.get("/v1/jobs/nope").status_code for _ in range(3)]
        assert statuses == [404, 404, 404]
        refused = client.get("/v1/jobs/nope")
        error = _error(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "5"  # one token at 0.2 a second
        assert error["retry_after_s"] == 5 and error["limit"] == "rate_limit_rps"
        assert "VIDREC_RATE_LIMIT_RPS" in error["message"]
        assert "client address testclient" in error["message"]  # auth off: per address
        # health, metrics and the docs are not counted
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            client.websocket_connect("/v1/streams/live"),
        ):
            pass
        assert denied.value.status_code == 429
        assert denied.value.headers["retry-after"] == "5"


def test_each_key_has_its_own_bucket(settings: Settings) -> None:
    a, b = new_key(), new_key()
    lines = ";".join(
        ApiKey(n, frozenset({"clips"}), hash_key(k)).line() for n, k in (("a", a), ("b", b))
    )
    keyed = settings.model_copy(
        update={"auth": "on", "api_keys": lines, "rate_limit_rps": 0.1, "rate_limit_burst": 2}
    )
    with TestClient(create_app(keyed)) as client:
        for key, expected in ((a, [404, 404, 429]), (b, [404, 404, 429])):
            headers = {"Authorization": f"Bearer {key}"}
            got = [client.get("/v1/jobs/x", headers=headers).status_code for _ in range(3)]
            assert got == expected
        limited = client.get("/v1/jobs/x", headers={"Authorization": f"Bearer {a}"})
        assert "the key 'a'" in limited.json()["error"]["message"]


def test_clip_jobs_beyond_the_quota_get_429(
    settings: Settings, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker(consume=False)
    one = settings.model_copy(update={"quota_clip_jobs": 1})
    with TestClient(create_app(one)) as client:
        post = lambda: client.post(  # noqa: E731
            "/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")}, data={"wait": "false"}
        )
        assert post().status_code == 202
        refused = post()
        error = _error(refused, 429, "quota_exceeded")
        assert error["limit"] == "quota_clip_jobs" and "VIDREC_QUOTA_CLIP_JOBS" in error["message"]
        assert refused.headers["retry-after"] == str(settings.retry_after_s)


def test_rtsp_sessions_beyond_the_quota_get_429_until_one_ends(
    settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    one = settings.model_copy(
        update={"quota_rtsp_sessions": 1, "allow_private_sources": True, "quota_live_sessions": 1}
    )
    source = {"source": "rtsp://127.0.0.1:8554/cam"}
    with TestClient(create_app(one)) as client:
        first = client.post("/v1/streams", json=source)
        assert first.status_code == 201, first.text
        _error(client.post("/v1/streams", json=source), 429, "quota_exceeded")
        # another kind has its own quota
        url = f"/v1/streams/live?model={LIVE_MODEL}"
        with client.websocket_connect(url) as ws:
            assert ws.receive_json()["type"] == "session"
            with client.websocket_connect(url) as second:
                refusal = second.receive_json()
                assert refusal["type"] == "error" and refusal["code"] == "quota_exceeded"
        assert client.delete(f"/v1/streams/{first.json()['session_id']}").status_code == 200
        assert client.post("/v1/streams", json=source).status_code == 201


def test_an_unhandled_error_is_a_500_in_the_error_shape_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/boom", boom)
    with TestClient(app) as client:
        response = client.get("/v1/boom", headers={"X-Request-ID": "bug-1"})
    error = _error(response, 500, "internal")
    assert error["request_id"] == "bug-1" and "a bug" not in error["message"]
    logged = [r for r in caplog.records if r.name == "service.gateway.request_id"]
    assert len(logged) == 1 and "unhandled error on GET /v1/boom" in logged[0].getMessage()
    assert "RuntimeError: a bug" in caplog.text  # with its traceback
