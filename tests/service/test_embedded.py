"""The embedded Redis: a real server on a Unix socket that leaves nothing behind."""

from __future__ import annotations

import os

import pytest

from service.embedded import EmbeddedRedis
from service.redis_conn import ping, ping_url, sync_client

pytestmark = pytest.mark.integration


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starts_answers_and_stops_leaving_no_process() -> None:
    server = EmbeddedRedis()
    with server:
        assert server.running and server.url.startswith("unix:///")
        pid, socket_path = server.pid, server.socket_path
        assert pid is not None and socket_path.exists()
        client = sync_client(server.url)
        try:
            assert ping(client)
            client.set("k", b"v")
            assert client.get("k") == b"v"
            # Nothing is persisted: no snapshots, no append-only file.
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert client.config_get("port") == {"port": "0"}  # socket only, no TCP
        finally:
            client.close()
    assert not server.running
    assert not _process_exists(pid)
    assert not socket_path.parent.exists()
    assert not ping_url(f"unix://{socket_path}")
    server.stop()  # twice is fine


def test_two_servers_are_independent_and_restart_empty() -> None:
    with EmbeddedRedis() as one, EmbeddedRedis() as two:
        assert one.url != two.url
        a, b = sync_client(one.url), sync_client(two.url)
        try:
            a.set("k", b"1")
            assert b.get("k") is None
        finally:
            a.close()
            b.close()
    with EmbeddedRedis() as again:
        client = sync_client(again.url)
        try:
            assert client.dbsize() == 0
        finally:
            client.close()


def test_start_twice_is_refused() -> None:
    with EmbeddedRedis() as server, pytest.raises(RuntimeError, match="already started"):
        server.start()


def test_fixture_url_answers(embedded_redis_url: str) -> None:
    assert ping_url(embedded_redis_url)
