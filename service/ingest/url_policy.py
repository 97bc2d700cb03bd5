"""The source URL policy: which RTSP addresses a caller may make the service connect to.

A URL is parsed strictly, its host checked against the allow and deny lists by name, then resolved
and every address it resolves to checked by category and network. The caller connects to the
address that was checked (:attr:`CheckedURL.connect_url`), so a name that resolves differently a
moment later (DNS rebinding) cannot redirect the connection.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from service.ingest.errors import InvalidSourceURLError, SourceURLForbiddenError
from service.ingest.settings import UrlPolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}

# What allow_private opens: RFC 1918, shared address space (carrier-grade NAT), unique-local.
# ipaddress's own is_private is wider (0.0.0.0/8, 240.0.0.0/4...), which must stay closed.
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)

# ::a.b.c.d, deprecated (RFC 4291): refused, since some stacks still reach a.b.c.d through it.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# IPv6 ranges whose low 32 bits are the IPv4 address reached: IPv4-translated (::ffff:0:a.b.c.d)
# and the well-known NAT64 prefix.
_EMBEDDED_LOW32 = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0:0/96", "64:ff9b::/96"))
# Refused whatever they carry: local-use NAT64 (the IPv4 address sits at a prefix-dependent
# offset), site-local (deprecated), 6bone (returned), the discard-only prefix.
_DEPRECATED_V6 = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "fec0::/10", "3ffe::/16", "100::/64")
)

# One shared pool bounds name lookups in time without a thread per request.
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="url-resolve")


@dataclass(frozen=True)
class CheckedURL:
    """A source URL that passed the policy.

    Attributes:
        url: The URL as given.
        scheme: ``"rtsp"`` or ``"rtsps"``.
        host: Host name or address literal, lower case, without brackets.
        port: Port, the scheme's default when absent.
        addresses: Every address the host resolved to; all passed.
        connect_url: The URL to hand to FFmpeg: for rtsp the host replaced by the first checked
            address; for rtsps the name is kept, since TLS needs it.
        redacted: The URL without its password, for logs and API answers.
    """

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    connect_url: str
    redacted: str


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``; unparsable input becomes ``"<invalid>"``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
    except ValueError:
        return "<invalid>"


def check_source_url(url: str, policy: UrlPolicy | None = None) -> CheckedURL:
    """Checks a source URL against the policy, resolving its host.

    Args:
        url: The URL a caller sent.
        policy: The policy; defaults to ``UrlPolicy()`` (public addresses only).

    Returns:
        The checked URL, with the address to connect to.

    Raises:
        InvalidSourceURLError: The URL is malformed or its scheme is not allowed.
        SourceURLForbiddenError: The host is denied by name, does not resolve, or resolves to a
            denied address.
    """
    policy = policy or UrlPolicy()
    parts, host, port = _parse(url, policy)
    _check_name(host, policy)
    addresses = _resolve(host, port, policy)
    for address in addresses:
        reason = _address_refusal(address, policy, port)
        if reason is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise SourceURLForbiddenError(f"source host {shown} is not allowed: {reason}")
    return CheckedURL(
        url=url,
        scheme=parts.scheme.lower(),
        host=host,
        port=port,
        addresses=addresses,
        connect_url=_pinned(parts, addresses[0]) if parts.scheme.lower() == "rtsp" else url,
        redacted=redact(url),
    )


def precheck_source_url(url: str, policy: UrlPolicy | None = None) -> None:
    """The checks of :func:`check_source_url` that need no DNS lookup: the URL's form and
    scheme, the host name against the allow and deny lists and, when the host is an address
    literal, the address itself. A host name is left unresolved: a lookup can block for the
    policy's whole ``resolve_timeout_s``, which a caller on a serving loop cannot afford, and
    it has to be resolved again before every connection anyway.

    Raises:
        InvalidSourceURLError: The URL is malformed or its scheme is not allowed.
        SourceURLForbiddenError: The host is denied by name, or is a denied address.
    """
    policy = policy or UrlPolicy()
    _, host, _ = _parse(url, policy)
    _check_name(host, policy)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: resolved by check_source_url before each connection
    check_source_url(url, policy)  # a literal resolves to itself, without a lookup


def _parse(url: str, policy: UrlPolicy) -> tuple[SplitResult, str, int]:
    if len(url) > policy.max_url_length:
        raise InvalidSourceURLError(f"the source URL is longer than {policy.max_url_length}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidSourceURLError("the source URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidSourceURLError(f"the source URL is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in policy.schemes:
        allowed = ", ".join(sorted(policy.schemes))
        raise InvalidSourceURLError(
            f"source URL scheme {scheme or '(none)'!r} is not allowed; use {allowed}"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidSourceURLError("the source URL has no host")
    if "%" in host:
        raise InvalidSourceURLError("IPv6 zone identifiers are not accepted in source URLs")
    if port == 0:
        raise InvalidSourceURLError("the source URL's port must be between 1 and 65535")
    return parts, host, port if port is not None else _DEFAULT_PORTS.get(scheme, 554)


def _matches(host: str, names: frozenset[str]) -> bool:
    for name in names:
        name = name.lower().rstrip(".")
        if name.startswith(".") and (host.endswith(name) or host == name[1:]):
            return True
        if host == name:
            return True
    return False


def _check_name(host: str, policy: UrlPolicy) -> None:
    if _matches(host, policy.deny_hosts):
        raise SourceURLForbiddenError(f"source host {host} is on the deny list")
    if policy.allow_hosts and not _matches(host, policy.allow_hosts):
        raise SourceURLForbiddenError(f"source host {host} is not on the allow list")


def _resolve(host: str, port: int, policy: UrlPolicy) -> tuple[IPAddress, ...]:
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=policy.resolve_timeout_s)
    except concurrent.futures.TimeoutError as exc:
        raise SourceURLForbiddenError(f"source host {host} did not resolve in time") from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise SourceURLForbiddenError(f"source host {host} does not resolve") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise SourceURLForbiddenError(f"source host {host} does not resolve")
    return tuple(addresses)


def _unwrapped(address: IPAddress) -> IPAddress | str:
    """The IPv4 address an IPv6 address carries, the address itself when it carries none, or
    why it is refused outright (a tunnel or deprecated form whose endpoint cannot be judged)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to a.b.c.d
        return address.sixtofour
    if address.teredo is not None:
        return "Teredo tunnel address"
    if address in _IPV4_COMPATIBLE:
        if int(address) <= 1:
            return address  # :: and ::1 are themselves (unspecified, loopback)
        return "deprecated IPv4-compatible address"  # no network routes it; some stacks do
    if any(address in net for net in _EMBEDDED_LOW32):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in _DEPRECATED_V6):
        return "deprecated or non-routable IPv6 range"
    return address


def _address_refusal(address: IPAddress, policy: UrlPolicy, port: int) -> str | None:
    """Why ``address`` (and ``port``) is refused, or ``None`` when it is allowed."""
    # An IPv4 address wrapped in IPv6 (::ffff:127.0.0.1, ::127.0.0.1, 64:ff9b::7f00:1,
    # 2002:7f00:1::) is judged as itself: the host would reach that IPv4 address.
    unwrapped = _unwrapped(address)
    if isinstance(unwrapped, str):
        return unwrapped
    address = unwrapped
    if any(address in net for net in policy.deny_nets):
        return "its network is on the deny list"
    if any(address in net for net in policy.allow_nets):
        return None
    if address.is_unspecified:
        return "unspecified address"
    if address.is_multicast:
        return "multicast address"
    if address.is_loopback:
        return None if policy.allow_loopback else "loopback address"
    if address.is_link_local:
        return None if policy.allow_link_local else "link-local address"
    if any(address in net for net in _PRIVATE):
        return None if policy.allow_private else "private address"
    # The rest of what is not globally routable (0.0.0.0/8, 240.0.0.0/4, documentation and
    # benchmark ranges...) has no business being a camera.
    if not address.is_global:
        return "reserved address"
    # A public host is reached on RTSP ports only: anything else would let callers map which
    # ports of a stranger's machine are open. Networks the operator opened keep every port.
    if policy.allow_ports and port not in policy.allow_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allow_ports))
        return f"port {port} is not an allowed RTSP port ({allowed})"
    return None


def _pinned(parts: SplitResult, address: IPAddress) -> str:
    literal = f"[{address}]" if address.version == 6 else str(address)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=f"{userinfo}{literal}{port}").geturl()
