"""Who a connection really comes from when it arrives through reverse proxies.

A proxy that passes a request on appends the address it received it from to ``X-Forwarded-For``
(or adds an element ``for=...`` to the standard ``Forwarded`` header, RFC 7239), and may say in
``X-Forwarded-Proto`` (or ``proto=``) whether the client spoke TLS to it. Anyone can write these
headers, so:

- They are read only when the direct peer (the TCP connection's address) is a trusted proxy
  (``TrustedProxies``, the ``--trusted-proxies`` setting); from anyone else they are ignored.
- The list is walked from the right: each proxy appended what it saw, so the rightmost entries
  were written by the proxies nearest to the relay. Trusted proxies are skipped; the first
  address that is not one is the client. Whatever stands to its left was written by the client
  or by proxies nobody vouches for, so it is never believed. When every entry is trusted, the
  leftmost is the client.
- An entry that names no address (RFC 7239's ``unknown`` or an obfuscated ``_identifier``) ends
  the walk at the hop that reported it: the client is unknown, and the nearest known address
  stands for it.
- Entries are parsed as the walk reaches them, so what stands left of the client is never read:
  junk a client writes there cannot make it look like the proxy (whose address it would then
  share: its bans and its connection budget). An entry the walk must read and cannot (not an
  address, empty, a broken ``Forwarded`` element, or a ``Forwarded`` quote left open anywhere,
  which hides where elements end) changes nothing: the direct peer's address is kept. Nothing a
  peer writes here raises.
- ``X-Forwarded-For`` wins over ``Forwarded`` when a request has both: the common proxies (nginx,
  HAProxy, Caddy, Traefik) write the former and pass the latter on from the client unchanged, so
  preferring it is what keeps a client from naming itself behind them.

Pure: no I/O; the caller hands over the header values and the peer's address, once per
connection or request (never per frame).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import RemoteError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TRUSTED = "127.0.0.1,::1"

# the headers this module reads, as ASGI writes their names (lower case, bytes)
FORWARDED_FOR = b"x-forwarded-for"
FORWARDED_PROTO = b"x-forwarded-proto"
FORWARDED = b"forwarded"
HEADER_NAMES = (FORWARDED_FOR, FORWARDED_PROTO, FORWARDED)

_SECURE = {"https": True, "wss": True, "http": False, "ws": False}
# RFC 7230 token and quoted-string, as RFC 7239 uses them in ``name=value`` pairs
_PAIR = re.compile(r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[!#$%&\'*+\-.^_`|~0-9A-Za-z:\[\]]+)\s*')


class BadProxyList(RemoteError):
    """The list of trusted proxies names something that is neither an address nor a network."""


@dataclass(frozen=True)
class TrustedProxies:
    """The addresses and networks whose forwarding headers are believed (empty: nobody's)."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """``"127.0.0.1, ::1, 10.0.0.0/8"``; raises ``BadProxyList`` naming the first bad item."""
        networks = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise BadProxyList(f"{item!r} is not an IP address or network (e.g. 10.0.0.1 or 10.0.0.0/8)") from None
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and self._trusts_ip(ip)

    def _trusts_ip(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(ip in network for network in self.networks)


@dataclass(frozen=True)
class ProxyHeaders:
    """The values of the forwarding headers of one request, each header's lines in order."""

    forwarded_for: tuple[str, ...] = ()
    forwarded_proto: tuple[str, ...] = ()
    forwarded: tuple[str, ...] = ()

    @classmethod
    def from_asgi(cls, headers: Iterable[tuple[bytes, bytes]]) -> ProxyHeaders:
        """From an ASGI scope's ``headers`` (lower-case names, latin-1 values)."""
        found: dict[bytes, list[str]] = {}
        for name, value in headers:
            if name in HEADER_NAMES:
                found.setdefault(name, []).append(value.decode("latin-1"))
        return cls(
            tuple(found.get(FORWARDED_FOR, ())), tuple(found.get(FORWARDED_PROTO, ())), tuple(found.get(FORWARDED, ()))
        )

    def __bool__(self) -> bool:
        return bool(self.forwarded_for or self.forwarded)


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the trusted proxies tell it."""

    address: str  # canonical text of the client's IP address
    port: int  # 0 unless a proxy said
    secure: bool | None  # whether the client spoke TLS to the first proxy; None: not said


@dataclass(frozen=True)
class _Hop:
    ip: IPAddress | None  # None: the hop's address is unknown or obfuscated
    port: int
    proto: str | None


def resolve(peer: str, headers: ProxyHeaders, trusted: TrustedProxies) -> Origin | None:
    """The client behind ``peer``, or None to keep ``peer`` as it is (not a trusted proxy, no
    usable header)."""
    if not trusted.networks or not headers:
        return None
    peer_ip = _ip(peer)
    if peer_ip is None or not trusted._trusts_ip(peer_ip):
        return None
    hops = _hops_of_forwarded_for(headers) if headers.forwarded_for else _hops_of_forwarded(headers.forwarded)
    chosen: _Hop | None = None
    nearest_known: _Hop | None = None
    try:
        for hop in hops:  # nearest first; entries left of the client are never even parsed
            if hop.ip is None:  # unknown or obfuscated: the nearest known hop stands for the client
                chosen = nearest_known
                break
            chosen = hop
            if not trusted._trusts_ip(hop.ip):
                break
            nearest_known = hop
    except _Malformed:
        return None
    if chosen is None or chosen.ip is None:
        return None
    secure = None if chosen.proto is None else _SECURE.get(chosen.proto.lower())
    return Origin(str(_unmapped(chosen.ip)), chosen.port, secure)


class _Malformed(Exception):
    """A part of a header that had to be read cannot be."""


def _hops_of_forwarded_for(headers: ProxyHeaders) -> Iterator[_Hop]:
    """X-Forwarded-For's hops, nearest (rightmost) first, each parsed only when reached."""
    entries = [entry for line in headers.forwarded_for for entry in line.split(",")]
    protos = [entry.strip() for line in headers.forwarded_proto for entry in line.split(",")]
    # a proto per hop when the proxies wrote one each; otherwise the nearest proxy's word for all
    aligned = len(protos) == len(entries)
    nearest_proto = protos[-1] if protos and protos[-1] else None
    for index in range(len(entries) - 1, -1, -1):
        found = _node(entries[index])
        if found is None or found[0] is None:  # X-Forwarded-For has no "unknown": a bad entry
            raise _Malformed
        yield _Hop(found[0], found[1], (protos[index] or None) if aligned else nearest_proto)


def _hops_of_forwarded(lines: tuple[str, ...]) -> Iterator[_Hop]:
    """RFC 7239's hops, nearest (rightmost element) first, each parsed only when reached."""
    elements = _split_outside_quotes(",".join(lines), ",")
    if elements is None:
        raise _Malformed  # an open quote: where its elements end cannot be told
    for element in reversed(elements):
        if not element.strip():
            continue
        pairs = _pairs(element)
        if pairs is None:
            raise _Malformed
        node = pairs.get("for")
        if node is None:
            raise _Malformed  # an element without for= cannot be placed in the chain
        found = _node(node)
        if found is None:
            raise _Malformed
        yield _Hop(found[0], found[1], pairs.get("proto"))


def _pairs(element: str) -> dict[str, str] | None:
    pairs: dict[str, str] = {}
    for part in _split_outside_quotes(element, ";") or ():
        if not part.strip():
            continue
        match = _PAIR.fullmatch(part)
        if match is None:
            return None
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in pairs:
            return None  # RFC 7239: each parameter at most once per element
        pairs[name] = value
    return pairs


def _split_outside_quotes(text: str, separator: str) -> list[str] | None:
    """``text`` split at ``separator`` outside quoted strings; None when a quote is left open."""
    parts, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def _node(text: str) -> tuple[IPAddress | None, int] | None:
    """An address with an optional port: ``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``,
    ``[2001:db8::1]``, ``[2001:db8::1]:4711``; ``unknown`` and ``_obfuscated`` (with an optional
    port) give no address. None when it is none of these."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
        if ":" not in host:
            return None  # brackets hold an IPv6 address only
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    port = 0
    if port_text:
        if port_text.startswith("_") and len(port_text) > 1:
            port_text = ""  # an obfuscated port
        elif not (port_text.isdigit() and port_text.isascii() and int(port_text) <= 65535):
            return None
        else:
            port = int(port_text)
    if host.lower() == "unknown" or (host.startswith("_") and len(host) > 1 and re.fullmatch(r"[A-Za-z0-9._-]+", host)):
        return None, port
    ip = _ip(host)
    if ip is None:
        return None
    return ip, port


def _ip(text: str) -> IPAddress | None:
    if "%" in text:  # a scope id (fe80::1%eth0) names no other host; compare without it
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
