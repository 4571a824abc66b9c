"""Property-based tests of SEA write verification (gunrelay.core.sea.check_field), seeded with the
values GunJS clients really signed (tests/vectors/sea.json).

The property: a single-character change anywhere in an accepted user-space write (its value
text, state, key or soul) is refused, unless the change leaves everything the signatures cover
as it was (the ``:`` payload, the signature bytes, the ``*`` writer, the certificate's ``m`` and
signature bytes). Such harmless changes exist: ``1.5`` vs ``1.50``, ``\\u00e9`` vs ``\\u00E9``,
white space between tokens, the unused low bits of a base64 signature's last character, fields
nobody signs. Every call also runs without the catch-all (``sea._check``), so that an internal
exception cannot pass for a refusal.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunrelay.core import jsjson, sea

SEA_VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "sea.json").read_text("utf-8"))

# accepted writes into user space: signed values (and the one unsigned "pub" write)
ACCEPTED = [
    v for v in SEA_VECTORS
    if v["expect"] is None and sea.user_space_pub(v["soul"]) is not None and not v["soul"].startswith("~@")
]
SIGNED = [v for v in ACCEPTED if v["value"].startswith("{")]
CERTIFIED = [v for v in SIGNED if '"+"' in v["value"] and '"*"' in v["value"]]


def lookup(vector: dict[str, Any]) -> Callable[[str, str], bool]:
    graph = vector.get("graph") or {}

    def is_blocked(soul: str, writer: str) -> bool:
        return sea.is_block_entry(graph.get(soul, {}).get(writer))

    return is_blocked


def check(vector: dict[str, Any], soul: Any = None, key: Any = None, value: Any = None, state: Any = None) -> str | None:
    """check_field on the vector with some parts replaced; the same answer without the catch-all."""
    args = (
        vector["soul"] if soul is None else soul,
        vector["key"] if key is None else key,
        vector["value"] if value is None else value,
        vector["state"] if state is None else state,
        vector["now"],
    )
    guarded = sea.check_field(*args, lookup(vector))
    bare = sea._check(*args, lookup(vector))  # raises if anything inside does
    assert guarded == bare
    assert guarded is None or isinstance(guarded, str)
    return guarded


# ---------------------------------------------------------------------------------------------
# what the signatures cover


def forgiving_base64(text: Any) -> bytes | None:
    """WHATWG forgiving-base64 decode (what atob does), written from the spec."""
    if not isinstance(text, str):
        return None
    text = re.sub(r"[\t\n\f\r ]", "", text)
    if len(text) % 4 == 0 and text.endswith("="):
        text = text[:-2] if text.endswith("==") else text[:-1]
    if len(text) % 4 == 1 or re.fullmatch(r"[A-Za-z0-9+/]*", text) is None:
        return None
    return binascii.a2b_base64(text + "=" * (-len(text) % 4))


def _json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


def covered(value: str, plain: bool = False) -> Any:
    """Everything in a user-space value that a signature covers (None: not a signed value at all);
    ``plain``: the unsigned ``pub`` write, where the text itself is what counts."""
    if plain:
        return ("plain", value)
    try:
        meta = _json(value)
    except (ValueError, RecursionError):
        return None
    if type(meta) is not dict:
        return None

    def text_of(v: Any) -> Any:
        try:
            return v if isinstance(v, str) else jsjson.stringify(v)
        except (TypeError, ValueError):
            return repr(v)

    def truthy(v: Any) -> bool:  # JavaScript's
        return not (v is None or v is False or v == "" or (type(v) in (int, float) and (v == 0 or v != v)))

    # a falsy '*' is ignored (the owner wrote it), and then so is any certificate '+'
    writer = meta.get("*") if truthy(meta.get("*")) else None
    cert = meta.get("+") if writer is not None else None
    if isinstance(cert, dict):
        cert = (text_of(cert.get("m")), forgiving_base64(cert.get("s")) or repr(cert.get("s")))
    return (text_of(meta[":"]) if ":" in meta else "<none>", forgiving_base64(meta.get("~")) or repr(meta.get("~")),
            repr(writer), repr(cert))


def test_the_seeds_are_there() -> None:
    assert len(ACCEPTED) > 40 and len(SIGNED) > 40 and len(CERTIFIED) >= 5
    for v in ACCEPTED:
        assert check(v) is None, v["name"]  # the seeds themselves verify


# ---------------------------------------------------------------------------------------------
# single-character mutations

# what a mutation writes: JSON syntax, base64 and number characters, white space, and others
replacement_chars = st.one_of(
    st.sampled_from(list('{}[]:,"\\ \t\n-+.eE0123456789=/_~*#>') + ["A", "a", "Z", "z", "Q", "g", "w", "\u00e9", "\ud800", "\U0001f600"]),
    st.characters(),
)


@st.composite
def one_char_change(draw: st.DrawFn, text: str) -> str:
    op = draw(st.sampled_from(["replace", "delete", "insert", "swap"] if text else ["insert"]))
    if op == "insert":
        i = draw(st.integers(0, len(text)))
        return text[:i] + draw(replacement_chars) + text[i:]
    i = draw(st.integers(0, len(text) - 1))
    if op == "delete":
        return text[:i] + text[i + 1:]
    if op == "swap" and i + 1 < len(text):
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + draw(replacement_chars) + text[i + 1:]


SEA_SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(data=st.data())
@SEA_SETTINGS
def test_a_changed_value_is_refused_unless_nothing_signed_changed(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(ACCEPTED), label="vector")
    original = vector["value"]
    mutated = data.draw(one_char_change(original), label="value")
    plain = vector not in SIGNED
    if check(vector, value=mutated) is None:
        assert covered(mutated, plain) is not None and covered(mutated, plain) == covered(original, plain), (vector["name"], mutated)


@given(data=st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_changed_state_key_or_soul_is_refused(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(ACCEPTED), label="vector")
    part = data.draw(st.sampled_from(["state", "key", "soul"]), label="part")
    if part == "state":
        text = jsjson.stringify(vector["state"])
        mutated_text = data.draw(one_char_change(text), label="state text")
        try:
            state = _json(mutated_text)
        except ValueError:
            return
        if type(state) not in (int, float) or (type(state) is float and not math.isfinite(state)):
            return  # not a state fields_of_put would pass on
        verdict = check(vector, state=state)
        if verdict is None and vector in SIGNED:  # (the unsigned 'pub' write covers no state)
            # the same number to JavaScript (e.g. 1795580708516 vs 1795580708516.0)
            assert jsjson.stringify(state) == text, (vector["name"], mutated_text)
    elif part == "key":
        key = data.draw(one_char_change(vector["key"]), label="key")
        if key == vector["key"]:
            return  # a swap of equal neighbours, or a character replaced by itself
        assert check(vector, key=key) is not None, (vector["name"], key)
    else:
        soul = data.draw(one_char_change(vector["soul"]), label="soul")
        if soul == vector["soul"]:
            return
        if check(vector, soul=soul) is None:
            # only acceptable when the change took the soul out of user space altogether
            assert sea.user_space_pub(soul) is None and not soul.startswith("~@"), (vector["name"], soul)


def test_every_signed_seed_refuses_a_nearby_state_another_key_or_soul() -> None:
    """Deterministic sweep over every signed seed (the properties above sample them)."""
    assert len(SIGNED) > 40
    for v in SIGNED:
        state = v["state"]
        for other in (state + 1, state - 1, state + 0.001, math.nextafter(state, math.inf), -state, state * 2):
            assert check(v, state=other) is not None, (v["name"], other)
        for key in (v["key"] + "x", v["key"][:-1] or "y", v["key"].upper() if v["key"].upper() != v["key"] else v["key"] + "X"):
            assert check(v, key=key) is not None, (v["name"], key)
        for soul in (v["soul"] + "/x", v["soul"] + "x", "app" + v["soul"]):  # all still user space of the same pub
            assert check(v, soul=soul) is not None, (v["name"], soul)


def test_every_deletion_and_substitution_in_two_signed_values_is_refused() -> None:
    """Exhaustive over every position of a plain signed value and of a certified one."""
    plain = next(v for v in SIGNED if v["name"] == "client: string")
    certified = next(v for v in SIGNED if v["name"] == "cert: client write with a valid certificate")
    refused = 0
    for vector, subs in ((plain, "xA0\"{ "), (certified, "x")):
        original = vector["value"]
        for i in range(len(original)):
            for mutated in [original[:i] + original[i + 1:]] + [original[:i] + c + original[i + 1:] for c in subs if c != original[i]]:
                if check(vector, value=mutated) is None:
                    assert covered(mutated) == covered(original), (vector["name"], i, mutated)
                else:
                    refused += 1
    assert refused > 1000


def _bit_flips(signature: str) -> list[str]:
    raw = base64.b64decode(signature)
    assert len(raw) == 64
    out = []
    for bit in range(512):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        out.append(base64.b64encode(bytes(flipped)).decode())
    return out


def test_every_bit_flip_of_a_signature_is_refused() -> None:
    plain = next(v for v in SIGNED if v["name"] == "client: number 30")
    meta = json.loads(plain["value"])
    for sig in _bit_flips(meta["~"]):
        assert check(plain, value=json.dumps({":": meta[":"], "~": sig}, separators=(",", ":"))) == sea.UNVERIFIED

    certified = next(v for v in CERTIFIED if v["name"] == "cert: client write with a valid certificate")
    meta = json.loads(certified["value"])
    for sig in _bit_flips(meta["~"]):  # the writer's signature over the field
        changed = dict(meta, **{"~": sig})
        assert check(certified, value=json.dumps(changed, separators=(",", ":"))) == sea.UNVERIFIED
    for sig in _bit_flips(meta["+"]["s"]):  # the owner's signature over the certificate
        changed = dict(meta, **{"+": dict(meta["+"], s=sig)})
        assert check(certified, value=json.dumps(changed, separators=(",", ":"))) == sea.CERT_FAIL


@given(data=st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_signed_value_moved_to_another_field_is_refused(data: st.DataObject) -> None:
    """Replay: a valid value from one recorded field, put on another field of the same user."""
    a = data.draw(st.sampled_from(SIGNED), label="from")
    b = data.draw(st.sampled_from(SIGNED), label="onto")
    if (a["soul"], a["key"], jsjson.stringify(a["state"])) == (b["soul"], b["key"], jsjson.stringify(b["state"])):
        return
    got = check(b, value=a["value"])
    if got is None:
        # only the same signed message on a soul and key it also covers
        assert (a["soul"], a["key"], jsjson.stringify(a["state"])) == (b["soul"], b["key"], jsjson.stringify(b["state"]))


# ---------------------------------------------------------------------------------------------
# arbitrary input never raises, even without the catch-all

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from([":", "~", "*", "+", "m", "s", "c", "w", "e", "wb", "#", ".", "x"]),
                                               children, max_size=4)),
    max_leaves=10,
)


@given(data=st.data())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_check_without_catch_all_never_raises_on_wire_shaped_input(data: st.DataObject) -> None:
    """Souls, keys, values and states of the kinds fields_of_put lets through, around real seeds:
    no exception inside ``_check`` (an exception would be reported as 'Unverified data.' and could
    hide a valid write being refused)."""
    seed = data.draw(st.sampled_from(SEA_VECTORS), label="seed")
    soul = data.draw(st.one_of(st.just(seed["soul"]), st.text(max_size=8), one_char_change(seed["soul"]),
                               st.sampled_from(["~@", "~@x", "#", "a<?1", "a<?Infinity", "a<?-1e400", "~a.b/c"])), label="soul")
    key = data.draw(st.one_of(st.just(seed["key"]), st.text(min_size=1, max_size=8), st.just("pub")), label="key")
    value = data.draw(st.one_of(
        st.just(seed["value"]), one_char_change(seed["value"]) if isinstance(seed["value"], str) else st.just(seed["value"]),
        json_values.map(lambda v: json.dumps(v)), st.none(), st.booleans(), st.text(max_size=8),
        st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
        st.builds(lambda s: {"#": s}, st.text(min_size=1, max_size=8))), label="value")
    state = data.draw(st.one_of(st.just(seed["state"]), st.floats(allow_nan=False, allow_infinity=False),
                                st.integers(-(2**53), 2**53)), label="state")
    now = data.draw(st.one_of(st.just(seed["now"]), st.floats(allow_nan=False, allow_infinity=False)), label="now")
    blocked = lookup(seed)
    out = sea._check(soul, key, value, state, now, blocked)
    assert out is None or isinstance(out, str)
    assert sea.check_field(soul, key, value, state, now, blocked) == out
