"""Which URLs we are willing to POST to (the contract refuses internal destinations)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(Exception):
    """The URL points somewhere we do not deliver to; the message says why."""


def _is_internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return _is_internal(embedded)
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


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
    if parts.username or parts.password:
        raise DestinationRefused("may not carry a user name or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check(url: str, *, allow_private: bool, at_delivery: bool) -> None:
    """Refuse a URL whose host is, or resolves to, a loopback, private, link-local or metadata address.

    Args:
        url: the destination.
        allow_private: the operator's ALLOW_PRIVATE_DESTINATIONS.
        at_delivery: a host name that does not resolve is refused (when saving, it may be set up later).

    Raises:
        DestinationRefused: with a reason fit to show the tenant.
    """
    _, host, port = parse(url)
    if allow_private:
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
            raise DestinationRefused("points at this machine (localhost)") from None
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            if at_delivery:
                raise DestinationRefused("DNS lookup failed") from None
            return
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if _is_internal(address):
            raise DestinationRefused(f"resolves to an internal address ({address})")
