"""The client behind trusted proxies (``core.forwarded``): a table of (peer, headers) -> client,
the header grammar (X-Forwarded-For, RFC 7239 Forwarded with quoted IPv6, ports, obfuscated
identifiers, several lines and elements), and that nothing a peer writes raises or is believed
from a peer that is not trusted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunrelay.core.forwarded import BadProxyList, Origin, ProxyHeaders, TrustedProxies, resolve

LOOPBACK = TrustedProxies.parse("127.0.0.1,::1")
PROXIES = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, 2001:db8:ff::/48")


def xff(*lines: str, proto: tuple[str, ...] = ()) -> ProxyHeaders:
    return ProxyHeaders(forwarded_for=lines, forwarded_proto=proto)


def fwd(*lines: str) -> ProxyHeaders:
    return ProxyHeaders(forwarded=lines)


CASES = [
    # (what, peer, headers, trusted, resolved address or None: keep the peer)
    ("one proxy, one client", "127.0.0.1", xff("198.51.100.7"), LOOPBACK, "198.51.100.7"),
    ("an untrusted peer's header is ignored", "192.0.2.1", xff("198.51.100.7"), LOOPBACK, None),
    ("another loopback address is not 127.0.0.1", "127.0.0.2", xff("198.51.100.7"), LOOPBACK, None),
    ("trust none", "127.0.0.1", xff("198.51.100.7"), TrustedProxies.parse(""), None),
    ("no header", "127.0.0.1", ProxyHeaders(), LOOPBACK, None),
    ("what the client wrote itself is left of the real hop", "127.0.0.1", xff("203.0.113.66, 198.51.100.7"), LOOPBACK, "198.51.100.7"),
    ("trusted hops are skipped from the right", "127.0.0.1", xff("203.0.113.66, 198.51.100.7, 10.1.2.3"), PROXIES, "198.51.100.7"),
    ("several header lines are one list, in order", "10.0.0.5", xff("203.0.113.66", "198.51.100.7", "10.9.9.9"), PROXIES, "198.51.100.7"),
    ("every hop trusted: the leftmost", "127.0.0.1", xff("10.0.0.9, 10.0.0.8"), PROXIES, "10.0.0.9"),
    ("a bare IPv6 client", "::1", xff("2001:db8::1"), LOOPBACK, "2001:db8::1"),
    ("an IPv6 client written in brackets with a port", "::1", xff("[2001:DB8:0::1]:4711"), LOOPBACK, "2001:db8::1"),
    ("an IPv4 client with a port", "127.0.0.1", xff("198.51.100.7:51234"), LOOPBACK, "198.51.100.7"),
    ("a dual-stack socket's IPv4 proxy", "::ffff:127.0.0.1", xff("198.51.100.7"), LOOPBACK, "198.51.100.7"),
    ("an IPv4-mapped client is written as IPv4", "127.0.0.1", xff("::ffff:198.51.100.7"), LOOPBACK, "198.51.100.7"),
    ("a trusted IPv6 network", "2001:db8:ff::2", xff("2001:db8:1::5"), PROXIES, "2001:db8:1::5"),
    ("what is left of the client is never read", "127.0.0.1", xff("client.example, [oops, 198.51.100.7"), LOOPBACK, "198.51.100.7"),
    ("a name where the walk must read: malformed", "127.0.0.1", xff("198.51.100.7, client.example"), LOOPBACK, None),
    ("junk behind trusted hops: malformed", "10.0.0.1", xff("junk, 10.0.0.2"), PROXIES, None),
    ("garbage", "127.0.0.1", xff("\x00\xff;;,,"), LOOPBACK, None),
    ("an empty entry", "127.0.0.1", xff("198.51.100.7,,"), LOOPBACK, None),
    ("unknown in X-Forwarded-For", "127.0.0.1", xff("unknown"), LOOPBACK, None),
    ("a port out of range", "127.0.0.1", xff("198.51.100.7:99999"), LOOPBACK, None),
    ("a peer that is no address at all", "?", xff("198.51.100.7"), LOOPBACK, None),
    # RFC 7239
    ("Forwarded for=", "127.0.0.1", fwd("for=192.0.2.60;proto=http;by=203.0.113.43"), LOOPBACK, "192.0.2.60"),
    ("Forwarded, quoted IPv6 with a port", "127.0.0.1", fwd('For="[2001:db8:cafe::17]:4711"'), LOOPBACK, "2001:db8:cafe::17"),
    ("Forwarded, quoted IPv4", "127.0.0.1", fwd('for="192.0.2.60"'), LOOPBACK, "192.0.2.60"),
    ("Forwarded, elements from the right", "10.0.0.1", fwd("for=192.0.2.43, for=198.51.100.17;by=10.0.0.1", "for=10.2.2.2"), PROXIES, "198.51.100.17"),
    ("Forwarded, an obfuscated client: the proxy that reported it stands for it", "127.0.0.1", fwd("for=_hidden, for=10.0.0.7"), PROXIES, "10.0.0.7"),
    ("Forwarded, unknown at the nearest hop: keep the peer", "127.0.0.1", fwd("for=198.51.100.17, for=unknown"), LOOPBACK, None),
    ("Forwarded, an obfuscated port", "127.0.0.1", fwd('for="198.51.100.17:_port1"'), LOOPBACK, "198.51.100.17"),
    ("Forwarded, an unquoted IPv6 with brackets", "127.0.0.1", fwd("for=[2001:db8::5]"), LOOPBACK, "2001:db8::5"),
    ("Forwarded, an element without for=", "127.0.0.1", fwd("proto=https"), LOOPBACK, None),
    ("Forwarded, an open bracket", "127.0.0.1", fwd('for="[2001:db8::1"'), LOOPBACK, None),
    ("Forwarded, an open quote", "127.0.0.1", fwd('for="192.0.2.60'), LOOPBACK, None),
    ("Forwarded, a broken element left of the client is not read", "127.0.0.1", fwd("for=junk!", "for=198.51.100.17"), LOOPBACK, "198.51.100.17"),
    ("Forwarded, an open quote anywhere hides where elements end", "127.0.0.1", fwd('for="junk', "for=198.51.100.17"), LOOPBACK, None),
    ("Forwarded, a parameter twice", "127.0.0.1", fwd("for=192.0.2.60;for=192.0.2.61"), LOOPBACK, None),
    ("Forwarded, no value", "127.0.0.1", fwd("for="), LOOPBACK, None),
    ("Forwarded, brackets around IPv4", "127.0.0.1", fwd('for="[192.0.2.60]"'), LOOPBACK, None),
    ("Forwarded from an untrusted peer", "192.0.2.1", fwd("for=198.51.100.17"), LOOPBACK, None),
    # both: X-Forwarded-For, which nginx and others write, wins over a Forwarded they pass on unchanged
    ("X-Forwarded-For wins", "127.0.0.1", ProxyHeaders(forwarded_for=("198.51.100.7",), forwarded=("for=203.0.113.66",)), LOOPBACK, "198.51.100.7"),
]


@pytest.mark.parametrize("what, peer, headers, trusted, expected", CASES, ids=[case[0] for case in CASES])
def test_the_client_behind_the_proxies(what, peer, headers, trusted, expected):
    origin = resolve(peer, headers, trusted)
    assert (origin.address if origin else None) == expected


def test_the_port_and_the_scheme_come_with_the_hop_that_named_the_client():
    assert resolve("127.0.0.1", xff("198.51.100.7:51234", proto=("https",)), LOOPBACK) == Origin("198.51.100.7", 51234, True)
    assert resolve("127.0.0.1", xff("198.51.100.7"), LOOPBACK) == Origin("198.51.100.7", 0, None)
    assert resolve("127.0.0.1", xff("198.51.100.7", proto=("http",)), LOOPBACK).secure is False
    assert resolve("127.0.0.1", xff("198.51.100.7", proto=("gopher",)), LOOPBACK).secure is None
    # one proto a hop: the client's hop's; otherwise the nearest proxy's word
    assert resolve("10.0.0.1", xff("198.51.100.7, 10.0.0.2", proto=("https, http",)), PROXIES).secure is True
    assert resolve("10.0.0.1", xff("198.51.100.7, 10.0.0.2", proto=("http",)), PROXIES).secure is False
    forwarded = fwd('for=198.51.100.7;proto=https, for=10.0.0.2;proto=http')
    assert resolve("10.0.0.1", forwarded, PROXIES) == Origin("198.51.100.7", 0, True)
    assert resolve("127.0.0.1", fwd('for="[2001:db8:cafe::17]:4711";proto=HTTPS'), LOOPBACK) == Origin("2001:db8:cafe::17", 4711, True)


def test_headers_are_read_from_an_asgi_scope_in_order_and_others_left_alone():
    headers = ProxyHeaders.from_asgi([
        (b"host", b"relay.example"), (b"x-forwarded-for", b"203.0.113.66"), (b"forwarded", b"for=192.0.2.1"),
        (b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https"), (b"x-real-ip", b"192.0.2.9"),
    ])
    assert headers == ProxyHeaders(("203.0.113.66", "198.51.100.7"), ("https",), ("for=192.0.2.1",))
    assert resolve("127.0.0.1", headers, LOOPBACK) == Origin("198.51.100.7", 0, True)
    assert not ProxyHeaders.from_asgi([(b"x-forwarded-proto", b"https")])  # a scheme alone names nobody


def test_the_trusted_list_takes_addresses_and_networks_and_names_what_it_cannot_read():
    trusted = TrustedProxies.parse(" 10.0.0.0/8 ,192.0.2.1,, fd00::/8 ")
    assert [trusted.trusts(a) for a in ("10.200.0.1", "192.0.2.1", "192.0.2.2", "fd12::1", "nonsense", "")] == [
        True, True, False, True, False, False,
    ]
    assert TrustedProxies.parse("").networks == () and not TrustedProxies.parse(" , ").trusts("127.0.0.1")
    for bad in ("localhost", "10.0.0.0/33", "10.0.0.1 10.0.0.2", "*"):
        with pytest.raises(BadProxyList) as refused:
            TrustedProxies.parse(f"127.0.0.1,{bad}")
        assert repr(bad.strip()) in str(refused.value)


TEXT = st.text(alphabet=st.sampled_from(list('0123456789abcdef:.[]";,=_ forFORunknowhtps\\\x00é')), max_size=60)


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXT, max_size=3), st.lists(TEXT, max_size=2), st.lists(TEXT, max_size=3))
def test_nothing_a_peer_writes_raises_and_an_answer_is_always_an_address(forwarded_for, proto, forwarded):
    headers = ProxyHeaders(tuple(forwarded_for), tuple(proto), tuple(forwarded))
    origin = resolve("127.0.0.1", headers, PROXIES)
    if origin is not None:
        import ipaddress

        assert str(ipaddress.ip_address(origin.address)) == origin.address
        assert 0 <= origin.port <= 65535
    assert resolve("192.0.2.1", headers, PROXIES) is None  # never from an untrusted peer
