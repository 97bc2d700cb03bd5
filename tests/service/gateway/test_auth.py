"""API keys on the gateway (in-process): when auth is on, 401/403, scopes, WebSocket keys."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import LIVE_MODEL, StandInWorker, TestClient
from starlette.testclient import WebSocketDenialResponse

from service.apikeys import ApiKey, hash_key, new_key
from service.gateway import create_app
from service.gateway.auth import KeyStore, auth_enabled, is_loopback
from service.settings import Settings

pytestmark = pytest.mark.integration

KEYS = {name: new_key() for name in ("clipper", "viewer", "camera", "root")}
SCOPES = {"clipper": {"clips"}, "viewer": {"live"}, "camera": {"rtsp"}, "root": {"admin"}}


def _line(name: str, key: str | None = None) -> str:
    return ApiKey(name, frozenset(SCOPES.get(name, {"clips"})), hash_key(key or KEYS[name])).line()


def _bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": "on", "api_keys": ";".join(_line(n) for n in KEYS)})


@pytest.fixture
def auth_client(auth_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(auth_settings)) as c:
        yield c


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("gateway.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auto_is_off_on_loopback_and_on_elsewhere(settings: Settings) -> None:
    assert not auth_enabled(settings)  # the defaults: 127.0.0.1, as `make run` serves
    assert auth_enabled(settings.model_copy(update={"host": "0.0.0.0"}))
    assert not auth_enabled(settings.model_copy(update={"host": "0.0.0.0", "auth": "off"}))
    assert auth_enabled(settings.model_copy(update={"auth": "on"}))


def test_auth_without_keys_stops_the_gateway_at_start(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"binds 0\.0\.0\.0, not a loopback.*VIDREC_API_KEYS_FILE"):
        create_app(settings.model_copy(update={"host": "0.0.0.0"}))
    with pytest.raises(ValueError, match="VIDREC_AUTH is on"):
        create_app(settings.model_copy(update={"auth": "on"}))
    missing = tmp_path / "nothing.txt"
    with pytest.raises(ValueError, match="VIDREC_API_KEYS_FILE: cannot read"):
        create_app(settings.model_copy(update={"auth": "on", "api_keys_file": missing}))
    bad = settings.model_copy(update={"auth": "on", "api_keys": "alice:clips"})
    with pytest.raises(ValueError, match="VIDREC_API_KEYS, entry 1: expected name:scopes:sha256"):
        create_app(bad)


def test_no_key_or_an_unknown_key_is_401(auth_client: TestClient) -> None:
    missing = _error(auth_client.get("/v1/models"), 401, "unauthorized")
    assert "Authorization: Bearer" in missing["message"]
    response = auth_client.get("/v1/models")
    assert response.headers["www-authenticate"] == 'Bearer realm="vidrec"'
    unknown = auth_client.get("/v1/models", headers={"Authorization": f"Bearer {new_key()}"})
    _error(unknown, 401, "unauthorized")
    assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
    _error(
        auth_client.get("/v1/models", headers={"Authorization": "Basic eDp5"}), 401, "unauthorized"
    )
    # an unknown /v1/ path says 401 too: a caller without a key learns nothing of the routes
    _error(auth_client.get("/v1/nothing-here"), 401, "unauthorized")


def test_scopes_open_their_routes_and_no_others(
    auth_client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    assert auth_client.get("/v1/models", headers=_bearer("viewer")).status_code == 200
    job = auth_client.get("/v1/jobs/nope", headers=_bearer("clipper"))
    _error(job, 404, "job_not_found")  # past the key: the route answered
    refused = _error(auth_client.get("/v1/jobs/nope", headers=_bearer("viewer")), 403, "forbidden")
    assert refused["required_scopes"] == ["clips"]
    assert "'viewer' lacks the scope" in refused["message"]
    rtsp = {"source": "rtsp://127.0.0.1:8554/cam"}
    _error(auth_client.post("/v1/streams", json=rtsp, headers=_bearer("clipper")), 403, "forbidden")
    _error(
        auth_client.post("/v1/streams", json=rtsp, headers=_bearer("camera")),
        403,
        "source_url_forbidden",  # past the key: the URL policy refuses loopback
    )
    _error(auth_client.get("/v1/jobs/nope", headers=_bearer("root")), 404, "job_not_found")


def test_health_docs_and_metrics_stay_open(
    auth_client: TestClient, auth_settings: Settings
) -> None:
    for path in ("/healthz", "/metrics", "/docs", "/openapi.json"):
        assert auth_client.get(path).status_code == 200, path
    assert auth_client.get("/readyz").status_code == 503  # open, and says why it is not ready
    admin_only = auth_settings.model_copy(update={"metrics_admin_only": True})
    with TestClient(create_app(admin_only)) as client:
        _error(client.get("/metrics"), 401, "unauthorized")
        _error(client.get("/metrics", headers=_bearer("viewer")), 403, "forbidden")
        assert client.get("/metrics", headers=_bearer("root")).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_websockets_take_the_key_as_a_header_or_a_subprotocol(
    auth_client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    url = f"/v1/streams/live?model={LIVE_MODEL}"
    with pytest.raises(WebSocketDenialResponse) as denied, auth_client.websocket_connect(url):
        pass
    assert denied.value.status_code == 401
    assert denied.value.json()["error"]["code"] == "unauthorized"
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        auth_client.websocket_connect(url, subprotocols=["vidrec", f"bearer.{KEYS['clipper']}"]),
    ):
        pass
    assert denied.value.status_code == 403
    with auth_client.websocket_connect(
        url, subprotocols=["vidrec", f"bearer.{KEYS['viewer']}"]
    ) as ws:
        assert ws.accepted_subprotocol == "vidrec"
        assert ws.receive_json()["type"] == "session"
    with auth_client.websocket_connect(url, headers=_bearer("viewer")) as ws:
        assert ws.accepted_subprotocol is None  # none offered, none chosen
        assert ws.receive_json()["type"] == "session"


def test_with_auth_off_the_vidrec_subprotocol_is_still_chosen(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    make_worker()
    with client.websocket_connect(
        f"/v1/streams/live?model={LIVE_MODEL}", subprotocols=["vidrec"]
    ) as ws:
        assert ws.accepted_subprotocol == "vidrec"
        assert ws.receive_json()["type"] == "session"


def test_the_keys_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    first, second = new_key(), new_key()
    path.write_text(f"# the CI robot\n{_line('clipper', first)}\n")
    store = KeyStore(None, path)
    assert store.find(first) is not None and store.find(second) is None
    # rotation: the new key is added, then the old one removed
    path.write_text(f"{_line('clipper-2', second)}\n")
    store._checked = 0.0  # the file is looked at every few seconds; now, for the test
    os.utime(path, (1, 1))
    assert store.find(second) is not None and store.find(first) is None
    path.write_text("not a line\n")  # a broken file keeps the keys in force
    os.utime(path, (2, 2))
    store._checked = 0.0
    assert store.find(second) is not None


def test_refusals_are_counted_under_their_route(auth_client: TestClient) -> None:
    _error(auth_client.get("/v1/jobs/abc"), 401, "unauthorized")
    _error(auth_client.get("/v1/jobs/def", headers=_bearer("viewer")), 403, "forbidden")
    metrics = auth_client.get("/metrics").text
    requests = "vidrec_http_requests_total"
    assert f'{requests}{{method="GET",route="/v1/jobs/{{job_id}}",status="401"}} 1.0' in metrics
    assert f'{requests}{{method="GET",route="/v1/jobs/{{job_id}}",status="403"}} 1.0' in metrics
