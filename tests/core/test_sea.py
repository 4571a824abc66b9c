"""gunrelay.core.sea against SEA cases recorded from GunJS (tests/vectors/sea.json), plus properties.

Every vector was produced with real GunJS + SEA and fed to a GunJS relay instance; "gunjs" is
what GunJS did and "expect" what gunrelay must answer (see tools/vectors/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunrelay.core import jsjson, sea

VECTOR_DIR = Path(__file__).parent.parent / "vectors"
SEA_VECTORS = json.loads((VECTOR_DIR / "sea.json").read_text("utf-8"))


def _graph_lookup(vector: dict) -> Any:
    graph = vector.get("graph") or {}

    def is_blocked(soul: str, writer: str) -> bool:
        return sea.is_block_entry(graph.get(soul, {}).get(writer))

    return is_blocked


@pytest.mark.parametrize("vector", SEA_VECTORS, ids=[v["name"] for v in SEA_VECTORS])
def test_sea_vector(vector: dict) -> None:
    got = sea.check_field(vector["soul"], vector["key"], vector["value"], vector["state"], vector["now"], _graph_lookup(vector))
    assert got == vector["expect"]


@pytest.mark.parametrize("vector", SEA_VECTORS, ids=[v["name"] for v in SEA_VECTORS])
def test_sea_vector_is_consistent_with_gunjs(vector: dict) -> None:
    """``expect`` equals what GunJS did, unless the vector documents a deviation."""
    g = vector["gunjs"]
    same = (g.get("ok") and vector["expect"] is None) or (g.get("err") is not None and g["err"] == vector["expect"])
    if vector.get("deviation"):
        assert not same
    else:
        assert same, g


def test_sea_vectors_cover_the_brief() -> None:
    names = " | ".join(v["name"] for v in SEA_VECTORS)
    for needed in ["client: string", "client: number 30", "client: true", "client: relation",
                   "client: nested JSON string", "fractional state", "sub-soul", "tampered value",
                   "signed by another key", "plain string", "old SEA{m,s} string", "pub not same",
                   "~@alice: pub entry", "~@: alias entry", "#docs: base64 hash key", "#docs: hex hash key",
                   "cert: client write with a valid certificate", "cert: expired",
                   "cert: certificate for another certificant", "cert: path not allowed",
                   "cert: key without the writer pub", "cert: hole",
                   "<?60 old", "signature truncated", "browser: write with a certificate"]:
        assert needed in names, needed
    errs = {v["expect"] for v in SEA_VECTORS}
    for text in [sea.UNVERIFIED, sea.ACCOUNT_NOT_SAME, sea.ALIAS_NOT_SAME, sea.ALIAS_MUST_EXIST,
                 sea.DATA_MUST_EXIST, sea.HASH_NOT_SAME, sea.CERT_EXPIRED, sea.CERT_FAIL,
                 sea.CERT_REQUIRED, sea.EXPIRED, None]:
        assert text in errs
    assert any(e and e.startswith("Path ") for e in errs)
    assert any(e and e.startswith("Certificant ") for e in errs)


def test_write_block_without_lookup_is_not_blocked() -> None:
    blocked = [v for v in SEA_VECTORS if (v["expect"] or "").startswith("Certificant ")]
    assert blocked
    for v in blocked:
        assert sea.check_field(v["soul"], v["key"], v["value"], v["state"], v["now"], None) is None


def test_write_block_lookup_that_raises_is_an_error() -> None:
    v = next(v for v in SEA_VECTORS if (v["expect"] or "").startswith("Certificant "))

    def boom(soul: str, writer: str) -> bool:
        raise RuntimeError("storage down")

    assert sea.check_field(v["soul"], v["key"], v["value"], v["state"], v["now"], boom) == sea.UNVERIFIED


def test_write_block_soul_passed_to_the_lookup() -> None:
    v = next(v for v in SEA_VECTORS if v["name"] == "cert: write block (relative name), blocked")
    seen: list[tuple[str, str]] = []

    def spy(soul: str, writer: str) -> bool:
        seen.append((soul, writer))
        return False

    assert sea.check_field(v["soul"], v["key"], v["value"], v["state"], v["now"], spy) is None
    owner = sea.user_space_pub(v["soul"])
    assert seen == [("~" + owner + "/blocklist", v["key"])]


# ---------------------------------------------------------------------------------------------
# user_space_pub

P = "UR0MmIZv5A-oX2SHwxMnkbV_7P3fWD5VB2-6i-XXEQg.FWJLcW_zjv_lRPzyaWdJpY8L0nKLrF5LYXn-8_J7TeE"


@pytest.mark.parametrize(
    ("soul", "pub"),
    [
        ("~" + P, P),
        ("~" + P + "/profile", P),
        ("~" + P + "/a/b", P),
        ("app~" + P + "/x", P),
        ("~" + P + "~x", P),
        ("~" + P + "#x", P),
        ("~a.b", "a.b"),
        ("~a/b/c", "a.b"),
        ("chat~room/1", "room.1"),
        ("x~@alice", ".alice"),
        ("~/", "."),
        ("~ab/", "ab."),
        ("~a\U0001f600b", "a."),  # an astral character is two UTF-16 separators
        ("~a\u00e9b", "a.b"),
        ("~abc", None),
        ("~", None),
        ("~~a.b", None),
        ("abc", None),
        ("", None),
        ("~@alice", ".alice"),  # check_field handles ~@ souls before asking for a pub
    ],
)
def test_user_space_pub(soul: str, pub: str | None) -> None:
    assert sea.user_space_pub(soul) == pub


def test_user_space_pub_rejects_non_strings() -> None:
    assert sea.user_space_pub(None) is None  # type: ignore[arg-type]
    assert sea.user_space_pub(5) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# content addressing


def test_content_hash_forms() -> None:
    digest = hashlib.sha256(b"immutable text").digest()
    b64 = base64.b64encode(digest).decode()
    assert sea.content_hash_ok(b64, "immutable text")
    assert sea.content_hash_ok("x#" + b64, "immutable text")
    assert sea.content_hash_ok(digest.hex(), "immutable text")
    assert sea.content_hash_ok(digest.hex().upper(), "immutable text")
    assert not sea.content_hash_ok(b64, "immutable text!")
    assert not sea.content_hash_ok(b64.rstrip("="), "immutable text")
    assert not sea.content_hash_ok("-" + digest.hex()[1:], "immutable text")
    assert sea.content_hash_ok(base64.b64encode(hashlib.sha256(b'{"#":"x"}').digest()).decode(), {"#": "x"})


# ---------------------------------------------------------------------------------------------
# properties

_KEY = ec.generate_private_key(ec.SECP256R1())
_NUMS = _KEY.public_key().public_numbers()
PUB = (
    base64.urlsafe_b64encode(_NUMS.x.to_bytes(32, "big")).decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(_NUMS.y.to_bytes(32, "big")).decode().rstrip("=")
)


def _sign(soul: str, key: str, value: Any, state: float) -> str:
    message = jsjson.stringify({"#": soul, ".": key, ":": value, ">": state})
    digest = hashlib.sha256(message.encode("utf-8")).digest()
    r, s = decode_dss_signature(_KEY.sign(digest, ec.ECDSA(hashes.SHA256())))
    sig = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    return jsjson.stringify({":": value, "~": sig})


gun_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.builds(lambda s: {"#": s}, st.text(min_size=1)),
)
states = st.one_of(
    st.integers(min_value=1, max_value=2**52),
    st.floats(min_value=1e-3, max_value=4e12),
    st.floats(min_value=-4e12, max_value=-1e-3),
)


@given(path=st.text(max_size=8), key=st.text(min_size=1, max_size=12), value=gun_values, state=states)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_own_signatures_verify(path: str, key: str, value: Any, state: float) -> None:
    soul = "~" + PUB + ("/" + path if path else "")
    if "<?" in soul:
        return
    wire = _sign(soul, key, value, state)
    assert sea.check_field(soul, key, wire, state, 0) is None
    assert sea.signed_payload(wire) == value
    other = state + 1 if abs(state) < 2**52 else state * 2
    assert sea.check_field(soul, key, wire, other, 0) == sea.UNVERIFIED
    assert sea.check_field(soul, key + "x", wire, state, 0) == sea.UNVERIFIED


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["#", ".", ":", "~", "*", "+", "m", "s", "c", "w", "e", "wb", "=", ">", "<", "x"]), children, max_size=5),
    ),
    max_leaves=12,
)


def _maybe_json_text(draw_value: Any) -> Any:
    try:
        return json.dumps(draw_value, allow_nan=True)
    except (TypeError, ValueError):
        return str(draw_value)


soul_parts = st.sampled_from(["~", "~@", "#", "<?", "/", ".", "~" + PUB, "~" + PUB + "/x", "~@alice", "<?60", "<?-1", "a", "😀", "\ud800", ""])
souls = st.one_of(st.text(max_size=10), st.lists(soul_parts, max_size=4).map("".join))
values = st.one_of(json_values, json_values.map(_maybe_json_text))
any_state = st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none(), st.booleans())


@given(soul=souls, key=st.one_of(st.text(max_size=10), st.just("pub"), st.none()), value=values, state=any_state,
       now=st.floats(), blocked=st.sampled_from([None, "yes", "no", "raise"]))
@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
def test_check_field_never_raises(soul: Any, key: Any, value: Any, state: Any, now: float, blocked: str | None) -> None:
    def is_blocked(s: str, w: str) -> bool:
        if blocked == "raise":
            raise ValueError("x")
        return blocked == "yes"

    out = sea.check_field(soul, key, value, state, now, None if blocked is None else is_blocked)
    assert out is None or isinstance(out, str)


@given(value=values)
def test_cert_shaped_garbage_never_raises(value: Any) -> None:
    raw = json.dumps({":": "x", "~": "AAAA", "*": PUB, "+": {"m": value, "s": "AAAA"}}, allow_nan=True)
    out = sea.check_field("~" + PUB + "/inbox", "k", raw, 1, 0)
    assert out == sea.UNVERIFIED


def test_public_keys_are_cached() -> None:
    v = next(v for v in SEA_VECTORS if v["name"] == "client: string")
    sea._public_key.cache_clear()
    for _ in range(3):
        assert sea.check_field(v["soul"], v["key"], v["value"], v["state"], v["now"]) is None
    info = sea._public_key.cache_info()
    assert info.misses == 1 and info.hits == 2


_WRITER = ec.generate_private_key(ec.SECP256R1())
_WNUMS = _WRITER.public_key().public_numbers()
WRITER = (
    base64.urlsafe_b64encode(_WNUMS.x.to_bytes(32, "big")).decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(_WNUMS.y.to_bytes(32, "big")).decode().rstrip("=")
)


def _raw_sig(key: ec.EllipticCurvePrivateKey, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()


cert_data = st.fixed_dictionaries(
    {},
    optional={
        "c": st.one_of(st.just(WRITER), st.just("*"), st.lists(st.sampled_from([WRITER, "*", "x"]), max_size=3), json_values),
        "w": st.one_of(st.sampled_from(["inbox", {"*": "inbox"}, {"*": "inbox", "+": "*"}, [{"#": "inbox"}, None]]), json_values),
        "e": st.one_of(st.integers(), st.text(max_size=6), json_values),
        "wb": st.one_of(st.text(max_size=6), st.builds(lambda s: {"#": s}, json_values), json_values),
    },
)


@given(data=st.one_of(cert_data, json_values), path=st.sampled_from(["", "/inbox", "/inbox/" + WRITER, "/x"]),
       key=st.sampled_from(["k", WRITER, "inbox"]), state=st.one_of(st.integers(), st.floats()))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_certificate_checks_never_raise(data: Any, path: str, key: str, state: float) -> None:
    """Valid signatures all the way, so every certificate rule runs on arbitrary certificate data."""
    soul = "~" + PUB + path
    cert = {"m": data, "s": _raw_sig(_KEY, jsjson.stringify(data))}
    value = {":": "v", "~": _raw_sig(_WRITER, jsjson.stringify({"#": soul, ".": key, ":": "v", ">": state})), "+": cert, "*": WRITER}
    out = sea._check(soul, key, jsjson.stringify(value), state, 0, lambda s, w: True)  # no catch-all
    assert out is None or isinstance(out, str)
