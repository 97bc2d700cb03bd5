"""The source URL policy over a table of addresses, including names that resolve to loopback."""

from __future__ import annotations

import ipaddress

import pytest

from service.ingest.errors import InvalidSourceURLError, SourceURLForbiddenError
from service.ingest.settings import UrlPolicy
from service.ingest.url_policy import check_source_url, precheck_source_url, redact

DEFAULT = UrlPolicy(resolve_timeout_s=3.0)

ALLOWED = [
    "rtsp://8.8.8.8/stream",
    "rtsp://8.8.8.8:8554/live/cam1?token=a",
    "RTSP://8.8.8.8/upper-case-scheme",
    "rtsps://1.1.1.1/secure",
    "rtsp://user:secret@8.8.4.4:554/cam",
    "rtsp://[2606:4700:4700::1111]:8554/v6",
]

# (url, words the refusal must contain)
FORBIDDEN = [
    ("rtsp://127.0.0.1/x", "loopback"),
    ("rtsp://127.9.9.9:8554/x", "loopback"),
    ("rtsp://localhost/x", "loopback"),
    ("rtsp://LOCALHOST./x", "loopback"),
    ("rtsp://127.1/x", "loopback"),
    ("rtsp://2130706433/x", "loopback"),
    ("rtsp://0x7f000001/x", "loopback"),
    ("rtsp://017700000001/x", "loopback"),
    ("rtsp://[::1]/x", "loopback"),
    ("rtsp://[::ffff:127.0.0.1]/x", "loopback"),
    ("rtsp://[::ffff:7f00:1]/x", "loopback"),
    ("rtsp://[64:ff9b::7f00:1]/x", "loopback"),
    ("rtsp://0.0.0.0/x", "unspecified"),
    ("rtsp://0/x", "unspecified"),
    ("rtsp://0.1.2.3/x", "reserved"),
    ("rtsp://[::]/x", "unspecified"),
    ("rtsp://10.0.0.5/x", "private"),
    ("rtsp://172.16.3.4/x", "private"),
    ("rtsp://192.168.1.10:554/x", "private"),
    ("rtsp://100.64.1.1/x", "private"),
    ("rtsp://[fd00::1]/x", "private"),
    ("rtsp://169.254.169.254/latest/meta-data", "link-local"),
    ("rtsp://[fe80::1]/x", "link-local"),
    ("rtsp://224.0.0.1/x", "multicast"),
    ("rtsp://[ff02::1]/x", "multicast"),
    ("rtsp://240.0.0.1/x", "reserved"),
    ("rtsp://255.255.255.255/x", "reserved"),
    ("rtsp://nonexistent.invalid/x", "resolve"),
]

INVALID = [
    ("", "scheme"),
    ("http://8.8.8.8/x", "scheme 'http'"),
    ("https://8.8.8.8/x", "scheme"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("rtmp://8.8.8.8/live", "scheme"),
    ("//8.8.8.8/x", "scheme"),
    ("8.8.8.8:554", "scheme"),
    ("rtsp:///x", "no host"),
    ("rtsp://:554/x", "no host"),
    ("rtsp://8.8.8.8:99999/x", "malformed"),
    ("rtsp://8.8.8.8:0/x", "port"),
    ("rtsp://8.8.8.8:abc/x", "malformed"),
    ("rtsp://exa mple.com/x", "spaces"),
    ("rtsp://8.8.8.8/x\n", "control"),
    ("rtsp://8.8.8.8/\x00", "control"),
    ("rtsp://[fe80::1%25eth0]/x", "zone"),
    ("rtsp://[::1/x", "malformed"),
    ("rtsp://8.8.8.8/" + "a" * 3000, "longer"),
]


@pytest.mark.parametrize("url", ALLOWED)
def test_public_addresses_pass(url: str) -> None:
    checked = check_source_url(url, DEFAULT)
    assert checked.scheme in ("rtsp", "rtsps")
    assert all(address.is_global for address in checked.addresses)
    assert checked.port in (554, 322, 8554)


@pytest.mark.parametrize(("url", "reason"), FORBIDDEN, ids=[u for u, _ in FORBIDDEN])
def test_internal_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(SourceURLForbiddenError, match=reason) as caught:
        check_source_url(url, DEFAULT)
    assert caught.value.http_status == 403


@pytest.mark.parametrize(("url", "reason"), INVALID, ids=[repr(u[:40]) for u, _ in INVALID])
def test_malformed_urls_and_other_schemes_are_invalid(url: str, reason: str) -> None:
    with pytest.raises(InvalidSourceURLError, match=reason) as caught:
        check_source_url(url, DEFAULT)
    assert caught.value.http_status == 400


def test_the_precheck_refuses_what_needs_no_lookup_and_looks_up_nothing() -> None:
    # A name is left for check_source_url: even one that cannot resolve passes the precheck.
    precheck_source_url("rtsp://nonexistent.invalid/x", DEFAULT)
    precheck_source_url("rtsp://localhost:8554/cam", DEFAULT)
    with pytest.raises(SourceURLForbiddenError, match="private"):
        precheck_source_url("rtsp://10.0.0.5/x", DEFAULT)  # an address literal is checked
    with pytest.raises(SourceURLForbiddenError, match="loopback"):
        precheck_source_url("rtsp://[::ffff:127.0.0.1]/x", DEFAULT)
    with pytest.raises(SourceURLForbiddenError):
        precheck_source_url(
            "rtsp://cam.internal.example/x", UrlPolicy(deny_hosts=frozenset({".example"}))
        )
    with pytest.raises(InvalidSourceURLError, match="scheme"):
        precheck_source_url("http://8.8.8.8/x", DEFAULT)


def test_connect_url_is_pinned_to_the_checked_address() -> None:
    policy = UrlPolicy(allow_loopback=True)
    checked = check_source_url("rtsp://admin:pw@localhost:8554/cam?x=1", policy)
    assert checked.addresses == (ipaddress.ip_address("127.0.0.1"),)
    # FFmpeg gets the address that was checked, never the name to resolve again.
    assert checked.connect_url == "rtsp://admin:pw@127.0.0.1:8554/cam?x=1"
    assert checked.redacted == "rtsp://admin:***@localhost:8554/cam?x=1"
    assert "pw" not in checked.redacted


def test_rtsps_keeps_the_name_for_tls() -> None:
    checked = check_source_url("rtsps://1.1.1.1/secure", DEFAULT)
    assert checked.connect_url == "rtsps://1.1.1.1/secure"
    assert checked.port == 322


def test_default_ports() -> None:
    assert check_source_url("rtsp://8.8.8.8/x", DEFAULT).port == 554
    assert check_source_url("rtsp://8.8.8.8/x", DEFAULT).connect_url == "rtsp://8.8.8.8/x"


def test_test_policy_allows_exactly_one_loopback_address() -> None:
    policy = UrlPolicy(allow_networks=("127.0.0.1/32",))
    assert check_source_url("rtsp://127.0.0.1:8554/x", policy).port == 8554
    assert check_source_url("rtsp://localhost:8554/x", policy).host == "localhost"
    with pytest.raises(SourceURLForbiddenError, match="loopback"):
        check_source_url("rtsp://127.0.0.2:8554/x", policy)
    with pytest.raises(SourceURLForbiddenError, match="loopback"):
        check_source_url("rtsp://[::1]:8554/x", policy)
    with pytest.raises(SourceURLForbiddenError, match="private"):
        check_source_url("rtsp://10.0.0.1/x", policy)


def test_category_flags() -> None:
    assert check_source_url("rtsp://[::1]/x", UrlPolicy(allow_loopback=True)).port == 554
    assert check_source_url("rtsp://10.1.2.3/x", UrlPolicy(allow_private=True)).port == 554
    assert check_source_url("rtsp://100.64.0.9/x", UrlPolicy(allow_private=True)).port == 554
    link_local = UrlPolicy(allow_link_local=True)
    assert check_source_url("rtsp://169.254.1.1/x", link_local).port == 554
    # One flag never opens another category.
    with pytest.raises(SourceURLForbiddenError, match="link-local"):
        check_source_url("rtsp://169.254.1.1/x", UrlPolicy(allow_private=True))
    with pytest.raises(SourceURLForbiddenError, match="private"):
        check_source_url("rtsp://10.1.2.3/x", UrlPolicy(allow_loopback=True))
    # Unspecified and multicast stay refused whatever the flags say.
    everything = UrlPolicy(allow_loopback=True, allow_private=True, allow_link_local=True)
    for url in ("rtsp://0.0.0.0/x", "rtsp://224.0.0.1/x"):
        with pytest.raises(SourceURLForbiddenError):
            check_source_url(url, everything)


def test_deny_networks_win_over_allow() -> None:
    policy = UrlPolicy(allow_private=True, deny_networks=("10.1.0.0/16", "8.8.8.0/24"))
    assert check_source_url("rtsp://10.2.0.1/x", policy).port == 554
    for url in ("rtsp://10.1.2.3/x", "rtsp://8.8.8.8/x"):
        with pytest.raises(SourceURLForbiddenError, match="deny list"):
            check_source_url(url, policy)
    both = UrlPolicy(allow_networks=("10.1.0.0/16",), deny_networks=("10.1.2.0/24",))
    assert check_source_url("rtsp://10.1.3.3/x", both).port == 554
    with pytest.raises(SourceURLForbiddenError, match="deny list"):
        check_source_url("rtsp://10.1.2.3/x", both)


def test_host_lists() -> None:
    deny = UrlPolicy(deny_hosts=frozenset({"cam.blocked.test", ".internal.example"}))
    for url in (
        "rtsp://cam.blocked.test/x",
        "rtsp://CAM.Blocked.Test./x",
        "rtsp://a.b.internal.example/x",
        "rtsp://internal.example/x",
    ):
        with pytest.raises(SourceURLForbiddenError, match="deny list"):
            check_source_url(url, deny)
    # A suffix entry matches whole labels only.
    with pytest.raises(SourceURLForbiddenError, match="resolve"):
        check_source_url("rtsp://notinternal.example.invalid/x", deny)

    allow = UrlPolicy(allow_hosts=frozenset({"localhost", "8.8.8.8"}), allow_loopback=True)
    assert check_source_url("rtsp://localhost/x", allow).host == "localhost"
    assert check_source_url("rtsp://8.8.8.8/x", allow).host == "8.8.8.8"
    for url in ("rtsp://127.0.0.1/x", "rtsp://8.8.4.4/x"):
        with pytest.raises(SourceURLForbiddenError, match="allow list"):
            check_source_url(url, allow)


def test_bad_network_in_the_policy_fails_at_configuration() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        UrlPolicy(allow_networks=("not-a-network",))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://u:p@h/x", "rtsp://u:***@h/x"),
        ("rtsp://h/x", "rtsp://h/x"),
        ("rtsp://u@h/x", "rtsp://u@h/x"),
        ("rtsp://[::1/x", "<invalid>"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
