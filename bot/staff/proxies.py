"""Who is on the other end of a console request: the address the login limits count.

``X-Forwarded-For`` is written by whoever sends the request, so it names the client only when the
direct peer is a proxy we were told to trust (``HUIYIN_TRUSTED_PROXIES``; empty by default, so nobody's
header is believed). Each proxy appends the address it saw, so the header is read from the right: the
right-most address that is not itself a trusted proxy is the client, and anything left of it is
whatever that client chose to write. These are uvicorn's ``ProxyHeadersMiddleware`` semantics, and
``huiyin serve`` gives uvicorn the same list, so both agree (applying the rule a second time to a
request uvicorn already rewrote changes nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# An IPv6 client usually holds a whole /64 and can change its address within it at will: the limit
# counts the /64, as it counts one IPv4 address.
IPV6_LIMIT_PREFIX = 64


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address: ``peer`` (the direct connection's host) unless it is a trusted proxy; then
    the right-most address of the ``X-Forwarded-For`` values (in header order) that is not a trusted
    proxy, or the left-most when every one of them is (the client is a proxy of ours)."""
    peer = peer or "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [h for value in forwarded_for for h in (_host(part) for part in value.split(",")) if h]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def limit_key(address: str) -> str:
    """What one client's login attempts are counted under: the IPv4 address, the IPv6 /64, or the text
    as it came (a unix socket, a test client) when it is not an address."""
    ip = _ip(address)
    if ip is None:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/{IPV6_LIMIT_PREFIX}", strict=False))
    return str(ip)


def _is_trusted(host: str, trusted: Sequence[IPNetwork]) -> bool:
    ip = _ip(host)
    return ip is not None and any(ip.version == net.version and ip in net for net in trusted)


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host(part: str) -> str:
    """One ``X-Forwarded-For`` entry without its port: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]:5678``."""
    part = part.strip()
    if part.startswith("["):
        end = part.find("]")
        return part[1:end] if end > 0 else part
    if part.count(":") == 1:
        return part.split(":", 1)[0]
    return part
