"""``vidrec keys new``: a key printed once, its hashed line, and a keys file the gateway reads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from service.apikeys import hash_key, parse_line
from service.cli import main
from service.gateway.auth import KeyStore


def test_new_prints_the_key_and_the_line_that_stores_its_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "new", "--name", "ci", "--scopes", "live,clips"]) == 0
    key, line = capsys.readouterr().out.splitlines()
    stored = parse_line(line)
    assert (stored.name, stored.scopes) == ("ci", frozenset({"clips", "live"}))
    assert stored.digest == hash_key(key) and key not in line


def test_new_appends_to_a_private_keys_file_the_gateway_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.txt"
    assert main(["keys", "new", "--name", "a", "--scopes", "clips", "--file", str(path)]) == 0
    assert main(["keys", "new", "--name", "b", "--scopes", "admin", "--file", str(path)]) == 0
    first, second = capsys.readouterr().out.splitlines()  # only the keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = KeyStore(None, path)
    found = store.find(first), store.find(second)
    assert [k.name if k else None for k in found] == ["a", "b"]
    assert first not in path.read_text() and second not in path.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "a b", "--scopes", "clips"], "key name 'a b' must be"),
        (["--name", "a", "--scopes", "video"], "unknown scope(s) video"),
    ],
)
def test_bad_names_and_scopes_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "new", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_name_already_in_the_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.txt"
    assert main(["keys", "new", "--name", "a", "--scopes", "clips", "--file", str(path)]) == 0
    before = path.read_text()
    assert main(["keys", "new", "--name", "a", "--scopes", "live", "--file", str(path)]) == 2
    assert "already has a key named 'a'" in capsys.readouterr().err
    assert path.read_text() == before
