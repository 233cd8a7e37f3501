"""Which URLs we are willing to POST to (the contract refuses internal destinations).

Two lines of defence. ``check`` runs when an endpoint is saved and refuses what it can tell at once (a
literal internal address in any spelling a resolver accepts, a name such as ``localhost``, a name that
resolves inward right now). The real guard is at connection time (jobs/sender.py): the sender resolves
the host itself with ``resolve``, refuses the connection if any address is internal (``check_address``),
and connects to the very address it checked, so a DNS answer that changes in between (DNS rebinding)
cannot slip through.
"""
from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never a public destination, whatever the Python version's ``is_global`` says about them.
_BLOCKED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names that only ever mean "this machine", "this network" or a cloud's metadata service.
_INTERNAL_NAMES = {"localhost", "localhost.localdomain", "metadata", "metadata.google.internal", "metadata.goog",
                   "instance-data", "instance-data.ec2.internal"}
_INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
# One part of a numeric IPv4 host as libc's resolver reads it: hexadecimal, octal or decimal.
_NUMBER_PART = re.compile(r"0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*")
# A host name a save-time lookup waits for; no answer in time is checked again at delivery.
SAVE_LOOKUP_TIMEOUT = 3.0
_lookups = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")


class DestinationRefused(Exception):
    """The URL points somewhere we do not deliver to; the message says why."""


def is_internal(ip: IPAddress) -> bool:
    """Whether ``ip`` is loopback, private, link-local, CGNAT, multicast, reserved, unspecified or another
    non-public address, including IPv4 addresses embedded in IPv6 (mapped, NAT64, 6to4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return is_internal(embedded)
        ip = ipaddress.IPv6Address(int(ip))  # without a %zone, which the network tests would not match
    return (not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
            or ip.is_link_local or any(ip in network for network in _BLOCKED if network.version == ip.version))


def check_address(ip: IPAddress | str) -> None:
    """Raises DestinationRefused when a connection to ``ip`` would reach inside."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if is_internal(address):
        mapped = getattr(address, "ipv4_mapped", None)
        raise DestinationRefused(f"resolves to an internal address ({f'::ffff:{mapped}' if mapped else address})")


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a resolver reads in a numeric host such as ``2130706433``, ``0x7f.1`` or ``0177.0.0.1``
    (inet_aton's forms, which Python's ``ipaddress`` refuses but libc and browsers accept), else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER_PART.fullmatch(part) for part in parts):
        return None
    values = [int(part, 16) if part.startswith("0x") else int(part, 8) if part.startswith("0") else int(part)
              for part in parts]
    last_bits = 8 * (5 - len(parts))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    value = 0
    for v in values[:-1]:
        value = value << 8 | v
    return ipaddress.IPv4Address(value << last_bits | values[-1])


def normalize_host(host: str) -> str:
    """The host as a resolver sees it: IDNA-encoded (full-width letters, ideographic dots and the like
    fold to ASCII), lower case, without a trailing dot."""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise DestinationRefused("has a host name that is not valid") from None
    return ascii_host.lower().rstrip(".")


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (``127.0.0.1``, ``::1``, ``fe80::1%eth0``, ``0x7f.1``), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return numeric_ipv4(host)


def parse(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of an http(s) URL, or raise DestinationRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused("is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("must start with http:// or https://")
    if not parts.hostname:
        raise DestinationRefused("must name a host")
    if parts.username or parts.password or "@" in parts.netloc:
        raise DestinationRefused("may not carry a user name or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple]]:
    """Every (family, socket address) the system resolver gives for ``host``; the one place the sender and
    ``check`` look names up (tests replace it to play a DNS server).

    Raises:
        socket.gaierror: the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))


def resolve_within(host: str, port: int, timeout: float) -> list[tuple[socket.AddressFamily, tuple]]:
    """``resolve`` bounded by ``timeout`` seconds (getaddrinfo itself has no timeout).

    Raises:
        socket.gaierror: the name does not resolve.
        TimeoutError: no answer in time.
    """
    future = _lookups.submit(resolve, host, port)
    try:
        return future.result(timeout=max(timeout, 0.001))
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"no DNS answer for {host} within {timeout:.1f}s") from None


def check(url: str, *, allow_private: bool, at_delivery: bool = False, lookup: bool = True) -> None:
    """Refuse a URL whose host is, or now resolves to, a loopback, private, link-local or metadata address.

    Args:
        url: the destination.
        allow_private: the operator's ALLOW_PRIVATE_DESTINATIONS.
        at_delivery: a name that does not resolve is refused; when saving it is accepted (it may be set
            up later, and every delivery checks again at connection time).
        lookup: False checks only what needs no DNS lookup (the sender resolves at connection time).

    Raises:
        DestinationRefused: with a reason fit to show the tenant.
    """
    _, raw_host, port = parse(url)
    if allow_private:
        return
    host = normalize_host(raw_host)
    address = literal_address(host)
    if address is not None:
        check_address(address)
        return
    if not re.fullmatch(r"[a-z0-9_.-]+", host) or ".." in host:
        raise DestinationRefused("has a host name that is not valid")
    if host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES):
        raise DestinationRefused(f"points at an internal host name ({host})")
    if "." not in host:
        raise DestinationRefused("must name a public host (a name with a dot, or a public IP address)")
    if not lookup:
        return
    try:
        addresses = resolve_within(host, port, SAVE_LOOKUP_TIMEOUT)
    except (OSError, UnicodeError):  # gaierror and TimeoutError are OSErrors
        if at_delivery:
            raise DestinationRefused("DNS lookup failed") from None
        return
    for _, sockaddr in addresses:
        check_address(sockaddr[0])
