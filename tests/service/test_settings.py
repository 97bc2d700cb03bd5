"""Settings: defaults, environment variables, validation, and the ingest objects built from them."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from service.ingest import ClipLimits, FrameLimits, UrlPolicy
from service.keys import Keys
from service.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIDREC_* variable of the calling shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("VIDREC_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.redis_url is None
    assert settings.key_prefix == "vidrec"
    assert settings.queue_max_jobs == 256
    assert settings.models == []
    assert settings.max_upload_bytes == 64 * 1024 * 1024


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDREC_REDIS_URL", "unix:///tmp/r.sock")
    monkeypatch.setenv("VIDREC_QUEUE_MAX_JOBS", "7")
    monkeypatch.setenv("VIDREC_MODELS", "tiny_a, tiny_b")
    monkeypatch.setenv("VIDREC_HEARTBEAT_TTL_S", "2.5")
    monkeypatch.setenv("VIDREC_ALLOW_PRIVATE_SOURCES", "true")
    settings = Settings()
    assert settings.redis_url == "unix:///tmp/r.sock"
    assert settings.queue_max_jobs == 7
    assert settings.models == ["tiny_a", "tiny_b"]
    assert settings.heartbeat_ttl_s == 2.5
    assert settings.allow_private_sources


def test_list_variables_accept_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDREC_SOURCE_ALLOW_NETWORKS", '["127.0.0.1/32", "10.1.0.0/16"]')
    assert Settings().source_allow_networks == ["127.0.0.1/32", "10.1.0.0/16"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("queue_max_jobs", 0),
        ("max_upload_bytes", -1),
        ("wait_timeout_s", 0),
        ("port", 70000),
        ("default_budget", 1.5),
        ("default_budget", 0),
        ("default_budget", "most"),
        ("default_budget", '{"threshold": -1}'),
        ("max_deliveries", 0),
        ("reclaim_idle_ms", 0),
        ("redis_url", "http://localhost:6379"),
        ("key_prefix", "has space"),
        ("key_prefix", ""),
        ("worker_id", "a:b"),
        ("device", "gpu"),
        ("source_allow_networks", ["not-a-network"]),
    ],
)
def test_bad_values_raise(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("0.1", {"fraction": 0.1}),
        ("all", {"keep_all": True}),
        ('{"threshold": 1.0}', {"threshold": 1.0}),
        ("", None),  # unset: each model's recommendation
    ],
)
def test_default_budget_variable(
    monkeypatch: pytest.MonkeyPatch, text: str, budget: dict[str, object] | None
) -> None:
    monkeypatch.setenv("VIDREC_DEFAULT_BUDGET", text)
    assert Settings().default_budget == budget


def test_default_budget_is_unset_by_default() -> None:
    assert Settings().default_budget is None


def test_bad_environment_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDREC_STRIDE", "zero")
    with pytest.raises(ValidationError, match="stride"):
        Settings()


def test_heartbeat_ttl_must_exceed_interval() -> None:
    with pytest.raises(ValidationError, match="heartbeat_ttl_s"):
        Settings(heartbeat_interval_s=2.0, heartbeat_ttl_s=2.0)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="queue_max_job"):
        Settings(queue_max_job=3)  # type: ignore[call-arg]


def test_assignment_is_validated() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.queue_max_jobs = -3
    settings.redis_url = "redis://127.0.0.1:6379/0"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_empty_redis_url_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDREC_REDIS_URL", "")
    assert Settings().redis_url is None


def test_ingest_objects() -> None:
    settings = Settings(max_upload_bytes=1000, max_clip_seconds=5, frame_max_bytes=2000)
    clip = settings.clip_limits()
    assert isinstance(clip, ClipLimits)
    assert (clip.max_bytes, clip.max_duration_s) == (1000, 5)
    frame = settings.frame_limits()
    assert isinstance(frame, FrameLimits)
    assert frame.max_bytes == 2000


def test_url_policy() -> None:
    closed = Settings().url_policy()
    assert isinstance(closed, UrlPolicy)
    assert not closed.allow_loopback and not closed.allow_private
    opened = Settings(allow_private_sources=True, source_allow_networks=["10.0.0.0/8"]).url_policy()
    assert opened.allow_loopback and opened.allow_private and not opened.allow_link_local
    assert opened.allow_networks == ("10.0.0.0/8",)


def test_worker_id() -> None:
    assert Settings(worker_id="gpu-0").resolved_worker_id() == "gpu-0"
    resolved = Settings().resolved_worker_id()
    assert resolved.endswith(f"-{os.getpid()}")
    assert ":" not in resolved and " " not in resolved


def test_keys_from_settings() -> None:
    keys = Keys.from_settings(Settings(key_prefix="t1", upload_ttl_s=5, heartbeat_ttl_s=2.5))
    assert keys.clips == "t1:clips"
    assert keys.job("j") == "t1:job:j"
    assert keys.inbox("w") == "t1:worker:w:inbox"
    assert keys.events("s") == "t1:session:s:events"
    assert (keys.upload_ttl_s, keys.heartbeat_ttl_ms) == (5, 2500)


def test_cli_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vidrec serve`/`gateway`/`worker` exit 2 with a message naming the bad variable."""
    from service.cli.gateway_cmd import load_settings

    monkeypatch.setenv("VIDREC_PORT", "abc")
    with pytest.raises(ValueError) as info:
        load_settings()
    assert str(info.value).startswith("bad settings: VIDREC_PORT: Input should be a valid integer")
    assert "abc" not in str(info.value) and "pydantic" not in str(info.value)
