"""API keys: their format, the stored line, parsing, and matching by hash."""

from __future__ import annotations

import re

import pytest

from service.apikeys import (
    KEY_PATTERN,
    ApiKey,
    hash_key,
    match,
    new_key,
    parse_line,
    parse_lines,
    parse_scopes,
    split_env,
)


def test_a_new_key_is_random_and_recognisable() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert re.fullmatch(r"vrk_[A-Za-z0-9_-]{43}", key)
        assert KEY_PATTERN.search(f"text {key} text")


def test_the_stored_line_round_trips_and_holds_only_the_hash() -> None:
    key = new_key()
    line = ApiKey("ci-bot", frozenset({"live", "clips"}), hash_key(key)).line()
    assert key not in line
    assert line == f"ci-bot:clips,live:{hash_key(key).hex()}"
    parsed = parse_line(line)
    assert (parsed.name, parsed.scopes) == ("ci-bot", frozenset({"clips", "live"}))
    assert match(key, [parsed]) == parsed


def test_matching_finds_the_right_key_and_nothing_for_others() -> None:
    a, b = new_key(), new_key()
    stored = [
        ApiKey("a", frozenset({"clips"}), hash_key(a)),
        ApiKey("b", frozenset({"admin"}), hash_key(b)),
    ]
    assert match(a, stored) == stored[0]
    assert match(b, stored) == stored[1]
    assert match(a[:-1] + ("A" if a[-1] != "A" else "B"), stored) is None
    assert match("", stored) is None
    assert match(a, []) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alice:clips", "expected name:scopes:sha256, got 2 field"),
        ("alice:clips:abc", "the hash must be 64 hex digits"),
        (f"alice:video:{'0' * 64}", "unknown scope(s) video"),
        (f"alice::{'0' * 64}", "at least one scope"),
        (f"a b:clips:{'0' * 64}", "key name 'a b' must be"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_line(line)


def test_a_raw_key_pasted_as_a_line_is_refused_without_being_repeated() -> None:
    key = new_key()
    with pytest.raises(ValueError) as caught:
        parse_lines(["# comment", "", key], "keys.txt")
    assert "keys.txt, entry 3" in str(caught.value)
    assert "store its hash" in str(caught.value)
    assert key not in str(caught.value)


def test_names_are_unique_and_env_entries_split_on_newlines_and_semicolons() -> None:
    line_a = ApiKey("a", frozenset({"live"}), hash_key(new_key())).line()
    line_b = ApiKey("b", frozenset({"rtsp"}), hash_key(new_key())).line()
    assert [k.name for k in parse_lines(split_env(f"{line_a};\n {line_b} \n"), "env")] == [
        "a",
        "b",
    ]
    with pytest.raises(ValueError, match="the name 'a' is used twice"):
        parse_lines([line_a, line_a], "env")


def test_scopes_parse_as_a_set() -> None:
    assert parse_scopes(" clips, admin ,clips") == frozenset({"clips", "admin"})
