"""API keys from the SDK and the CLI against a real gateway with ``VIDREC_AUTH=on``: the key goes
as ``Authorization: Bearer`` on requests and on WebSocket handshakes, from the argument or
``VIDREC_API_KEY``; refusals are typed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sdk_support import KeyedGateway

from service.cli import main
from vidrec import (
    AuthenticationError,
    Client,
    LabelsEvent,
    PermissionDeniedError,
)

pytestmark = pytest.mark.integration


def test_no_key_and_a_key_without_the_scope_are_refused(
    keyed_gateway: KeyedGateway, samples: Path
) -> None:
    with Client(keyed_gateway.url) as client:
        assert client.health().status == "ok"  # liveness needs no key
        with pytest.raises(AuthenticationError) as no_key:
            client.classify(samples / "clip.mp4")
        assert no_key.value.status == 401 and no_key.value.code == "unauthorized"
        with pytest.raises(AuthenticationError), client.live():
            pass
    with (
        Client(keyed_gateway.url, api_key="not-a-key-anyone-has") as client,
        pytest.raises(AuthenticationError),
    ):
        client.models()
    with Client(keyed_gateway.url, api_key=keyed_gateway.clips_only) as client:
        assert client.classify(samples / "clip.mp4").labels
        with pytest.raises(PermissionDeniedError) as denied, client.live():
            pass
        assert denied.value.status == 403 and denied.value.code == "forbidden"


def test_a_key_opens_clips_and_live_streams(
    keyed_gateway: KeyedGateway, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDREC_API_KEY", keyed_gateway.full)
    with Client(keyed_gateway.url) as client:  # the key from the environment
        assert client.classify(samples / "clip.mp4", top_k=1).labels
        with client.live(stride=4) as stream:
            assert stream.session_id in {s.session_id for s in client.sessions()}
            for _ in range(4):
                stream.send(np.full((64, 64, 3), 128, np.uint8))
            stream.finish()
            labels = [e for e in stream if isinstance(e, LabelsEvent)]
        assert [e.frame_index for e in labels] == [4]


def test_the_cli_sends_the_key(
    keyed_gateway: KeyedGateway,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = keyed_gateway.url
    monkeypatch.delenv("VIDREC_API_KEY", raising=False)
    assert main(["client", "models", "--url", url]) == 1
    assert "HTTP 401 unauthorized" in capsys.readouterr().err
    assert main(["client", "models", "--url", url, "--api-key", keyed_gateway.full]) == 0
    assert "live worker(s)" in capsys.readouterr().out
    monkeypatch.setenv("VIDREC_API_KEY", keyed_gateway.full)
    monkeypatch.setenv("VIDREC_URL", url)
    assert main(["client", "models", "--json"]) == 0
    assert '"defaults"' in capsys.readouterr().out
