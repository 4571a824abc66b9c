"""Property-based tests of the frame parser and message decoder (gunrelay.core.wire).

The contract under test (wire.py): ``parse_frame`` returns the list of raw messages of a frame
or raises ``FrameError``; ``decode`` returns a message or raises ``MessageError``; nothing else
escapes either, whatever the peer sends. The oracle for what a frame *is* is the standard
library's ``json`` with NaN/Infinity refused (what ``JSON.parse`` accepts), independently of
orjson, which wire.py tries first.

A bug these tests found (a budget of -1e400 escaped as OverflowError) is pinned at the end.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gunrelay.core import wire
from gunrelay.core.lex import Lex

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# strategies

def pair_surrogates(text: str) -> str:
    """What a string becomes after a JSON round trip: adjacent surrogates form one character."""
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def js_normal(value: Any) -> Any:
    """``value`` as JSON.parse(JSON.stringify(value)) gives it back (strings' surrogates paired)."""
    if isinstance(value, str):
        return pair_surrogates(value)
    if isinstance(value, dict):
        return {pair_surrogates(k): js_normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_normal(v) for v in value]
    return value


# text with the characters that matter here over-represented: lone and paired surrogates,
# astral and high-BMP characters, controls, quotes, backslashes and GUN's one-character keys
tricky_chars = st.sampled_from(["\ud800", "\udbff", "\udc00", "\ud83d", "\ude00", "\U0001f600", "\ue000", "\uffff",
                                "\x00", "\x1f", '"', "\\", "#", ".", "@", "_", ">", "<", "*", "~", "%", "-", "a", "é"])
texts = st.one_of(st.text(max_size=12), st.lists(tricky_chars, max_size=8).map("".join))
gun_keys = st.sampled_from(["#", "@", ".", ":", ">", "<", "*", "=", "-", "%", "_", "dam", "get", "put", "ok", "err",
                            "pid", "><", "##", "reset"])
keys = st.one_of(gun_keys, texts)
finite_numbers = st.one_of(
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Numbers a JSON frame can carry (NaN cannot be written in JSON). Infinity (from 1e400) and
# integers beyond the double range have their own tests below and in test_properties_graph.py.
wire_numbers = st.one_of(finite_numbers, st.integers(min_value=-(2**200), max_value=2**200))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), wire_numbers, texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=20,
)


def to_json_text(value: Any) -> str:
    """JSON text for a parsed value, lone surrogates escaped (as JSON.stringify writes them)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def _refuse(name: str) -> Any:
    raise ValueError(name)


def reference_parse(text: str | bytes) -> tuple[str, Any]:
    """What JSON.parse would give, by the standard library alone: ('ok', value) or ('error', None)."""
    try:
        return "ok", json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return "error", None


def js_double(number: int | float) -> float:
    """The double JavaScript holds for a JSON number (integers beyond the double range: +-Infinity)."""
    try:
        return float(number)
    except OverflowError:
        return math.copysign(math.inf, number)


def _same(a: Any, b: Any, ordered: bool = True) -> bool:
    """Structural equality with JavaScript's view of numbers (all doubles: orjson reads integers
    beyond 64 bits as the nearest double, the stdlib fallback keeps them exact) and that tells
    booleans from numbers; iterative, for deeply nested frames. ``ordered``: objects' key order
    must match too."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) in (int, float) and type(y) in (int, float):
            if js_double(x) != js_double(y):
                return False
            continue
        if type(x) is not type(y):
            return False
        if type(x) is dict:
            if (list(x) != list(y)) if ordered else (x.keys() != y.keys()):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif type(x) is list:
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif x != y:
            return False
    return True


# frame texts: valid JSON of any shape, JSON with a few characters cut or spliced in, and noise
@st.composite
def frame_texts(draw: st.DrawFn) -> str:
    base = to_json_text(draw(json_values))
    mode = draw(st.sampled_from(["whole", "cut", "splice", "noise", "wrap"]))
    if mode == "cut" and base:
        i = draw(st.integers(0, len(base) - 1))
        j = draw(st.integers(i, min(len(base), i + 4)))
        return base[:i] + base[j:]
    if mode == "splice":
        i = draw(st.integers(0, len(base)))
        return base[:i] + draw(st.sampled_from(["{", "}", "[", "]", ",", ":", '"', "\\", "NaN", "Infinity", "-",
                                                "1e400", "-1e400", "\ufeff", "\x00", " ", "\\ud800", "9" * 30])) + base[i:]
    if mode == "noise":
        return draw(st.text(max_size=40))
    if mode == "wrap":
        depth = draw(st.integers(1, 3000))
        return "[" * depth + base + "]" * draw(st.sampled_from([depth, depth - 1, depth + 1]))
    return base


# ---------------------------------------------------------------------------------------------
# parse_frame


@given(text=frame_texts())
@SETTINGS
@example(text='{"#":"a","x":"\\ud800","n":123456789012345678901234567890}')
@example(text="[" * 100_000)
@example(text="[" * 2000 + "]" * 2000)
@example(text='{"a":1,"a":2}')
@example(text="\ufeff{}")
@example(text="[1,]")
@example(text='{"n":' + "9" * 5000 + "}")
def test_parse_frame_agrees_with_json_parse(text: str) -> None:
    """A frame parses exactly when JSON.parse accepts it and gives an object or array, to the same
    value; anything else is FrameError (never another exception)."""
    status, expected = reference_parse(text)
    try:
        got = wire.parse_frame(text)
    except wire.FrameError:
        assert status == "error" or type(expected) not in (dict, list), (status, expected)
        return
    assert status == "ok"
    assert _same(got, [expected] if type(expected) is dict else expected)


@given(data=st.one_of(st.binary(max_size=64), frame_texts().map(lambda t: t.encode("utf-8", "surrogatepass"))))
@SETTINGS
@example(data=b"\xff\xfe{\x00}\x00")
@example(data=b"\x00\x00\x00{")
@example(data=b'{"a":"\xed\xa0\x80"}')  # a surrogate encoded in UTF-8: not UTF-8
def test_parse_frame_on_bytes_only_raises_frame_error(data: bytes) -> None:
    try:
        got = wire.parse_frame(data)
    except wire.FrameError:
        return
    assert type(got) is list


@given(value=json_values)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_json_object_or_array_is_a_frame(value: Any) -> None:
    text = to_json_text(value)
    if type(value) not in (dict, list):
        with pytest.raises(wire.FrameError):
            wire.parse_frame(text)
        return
    got = wire.parse_frame(text)
    value = js_normal(value)
    assert _same(got, [value] if type(value) is dict else value)


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("[" * 1_000_000, "refused"),  # deep nesting, unterminated
        ("[" * 50_000 + "]" * 50_000, "refused"),  # deep nesting, terminated: beyond any recursion limit
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "refused"),
        ("1" * 1_000_000, "refused"),  # a bare number is not a frame
        ('{"n":' + "1" * 1_000_000 + "}", "refused"),  # beyond Python's int-from-text limit (JSON.parse: Infinity)
        ('{"n":0.' + "1" * 1_000_000 + "}", "parsed"),
        ('{"n":1e' + "9" * 100_000 + "}", "parsed"),  # Infinity, as JSON.parse reads it
        ('"' + "\\u0041" * 200_000 + '"', "refused"),  # a string is not a frame
        ('["' + "\\ud800" * 200_000 + '"]', "parsed"),
        ("[" + ",".join(["{}"] * 200_000) + "]", "parsed"),
        ("[" + ",".join(["{}"] * 200_000) + ",]", "refused"),
    ],
    ids=["open-brackets", "deep-array", "deep-object", "bare-digits", "huge-int", "long-fraction",
         "huge-exponent", "many-escapes", "many-lone-surrogates", "many-objects", "many-objects-trailing-comma"],
)
def test_adversarial_frames_are_refused_or_parsed_promptly(text: str, outcome: str) -> None:
    """Big hostile frames end in FrameError or a result (the suite's runtime bounds 'promptly')."""
    if outcome == "refused":
        with pytest.raises(wire.FrameError):
            wire.parse_frame(text)
        return
    got = wire.parse_frame(text)
    assert type(got) is list and len(got) >= 1
    if text.startswith('{"n":1e'):
        assert got == [{"n": math.inf}]


# ---------------------------------------------------------------------------------------------
# decode

msg_ids = st.one_of(st.none(), texts, finite_numbers, st.booleans(), st.just({}), st.just([]))
lex_specs = st.one_of(
    texts,
    st.fixed_dictionaries({}, optional={"=": st.one_of(texts, st.none(), st.integers()), "*": st.one_of(texts, st.none()),
                                        ">": st.one_of(texts, st.none(), st.booleans()), "<": texts,
                                        "-": st.one_of(st.booleans(), st.integers(0, 1)), "#": texts}),
    json_values,
)
get_specs = st.one_of(
    st.fixed_dictionaries({}, optional={"#": st.one_of(texts, lex_specs), ".": lex_specs, "%": st.one_of(finite_numbers, texts, st.none()),
                                        "-": st.one_of(st.booleans(), st.integers(0, 1))}),
    json_values,
)
messages = st.one_of(
    st.fixed_dictionaries({}, optional={"#": msg_ids, "dam": json_values, "get": get_specs, "put": json_values,
                                        "@": st.one_of(texts, finite_numbers), "%": st.one_of(finite_numbers, texts),
                                        "pid": json_values, "reset": json_values, "ok": json_values}),
    json_values,
)


def expected_kind(raw: Any) -> type | None:
    """The message class decode must return, or None when it must raise MessageError (apart from
    a get whose spec is malformed, checked separately)."""
    if type(raw) is not dict:
        return None
    msg_id = raw.get("#")
    if not (msg_id is None or type(msg_id) in (str, int, float)):
        return None
    if "dam" in raw:
        return wire.Dam
    if "get" in raw:
        return wire.Get
    if "put" in raw:
        return wire.Put
    if "@" in raw:
        return wire.Reply
    return wire.Other


def check_get(get: wire.Get, spec: dict[str, Any], raw: dict[str, Any]) -> None:
    reverse = spec.get("-") is True
    soul_spec = spec.get("#")
    if type(soul_spec) is str:
        assert get.soul == soul_spec and soul_spec != "" and get.soul_lex is None
    else:
        assert type(soul_spec) is dict
        assert get.soul is None and isinstance(get.soul_lex, Lex)
        assert get.soul_lex.reverse == (reverse or soul_spec.get("-") is True)
        for name, field in (("=", "eq"), ("*", "prefix"), (">", "start"), ("<", "end")):
            assert getattr(get.soul_lex, field) == soul_spec.get(name)
    key_spec = spec.get(".")
    if key_spec is None:
        assert get.key is None
    elif type(key_spec) is str:
        assert get.key == Lex(exact=key_spec, reverse=reverse)
    else:
        assert isinstance(get.key, Lex) and get.key.exact is None
        for name, field in (("=", "eq"), ("*", "prefix"), (">", "start"), ("<", "end")):
            assert getattr(get.key, field) == key_spec.get(name)
    budget = spec.get("%", raw.get("%"))
    if budget is None or budget >= 2**31:
        assert get.budget is None
    else:
        assert get.budget == max(1, int(budget)) and 1 <= get.budget < 2**31


@given(raw=messages)
@SETTINGS
@example(raw={"#": "g", "get": {"#": "s", "%": 1e300}})
@example(raw={"#": "g", "get": {"#": "s", "%": -1e300}})
@example(raw={"#": "g", "get": {"#": "s", "%": 2**31}})
@example(raw={"#": "g", "get": {"#": "s", "%": 2**200}})
@example(raw={"#": "g", "get": {"#": {"=": "s"}}})
@example(raw={"#": True, "get": {"#": "s"}})
def test_decode_returns_the_kind_its_keys_say_or_message_error(raw: Any) -> None:
    kind = expected_kind(raw)
    try:
        message: Any = wire.decode(raw)
    except wire.MessageError as exc:
        if kind is not None:
            # only a get may still be refused, and then the error carries its id to answer
            assert kind is wire.Get, raw
            assert exc.reply_to == (None if raw.get("#") == "" else raw.get("#"))
        return
    assert kind is not None and [type(message)] == [kind], (raw, message)
    # an empty id is no id (GunJS gives such a message a fresh one)
    assert _same(message.msg_id, None if raw.get("#") == "" else raw.get("#"))
    if kind is wire.Dam:
        assert (message.kind, message.pid, message.reply_to, message.raw_reset) == (
            raw["dam"], raw.get("pid"), raw.get("@"), raw.get("reset"))
    elif kind is wire.Put:
        assert message.graph is raw["put"] and message.reply_to == raw.get("@")
    elif kind is wire.Reply:
        assert message.reply_to == raw["@"]
    elif kind is wire.Get:
        check_get(message, raw["get"], raw)


@given(text=frame_texts())
@SETTINGS
def test_parse_then_decode_raises_only_documented_errors(text: str) -> None:
    try:
        raws = wire.parse_frame(text)
    except wire.FrameError:
        return
    for raw in raws:
        try:
            wire.decode(raw)
        except wire.MessageError:
            pass


# ---------------------------------------------------------------------------------------------
# encode

message_values = st.recursive(
    st.one_of(st.none(), st.booleans(), finite_numbers, texts),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)),
    max_leaves=15,
)


@given(message=st.dictionaries(keys, message_values, max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(message={"\ud800": "\udc00", "k": ["\ud83d", "\ude00"]})
@example(message={"n": 2**53, "f": 1e21, "g": 5e-324, "z": -0.0})
@example(message={"2": 1, "1": 2, "b": 3})
def test_encode_parses_back_to_the_same_message(message: dict[str, Any]) -> None:
    text = wire.encode(message)
    assert isinstance(text, str)
    text.encode("utf-8")  # sendable as a websocket text frame: no lone surrogates in the text itself
    assert _same_unordered(wire.parse_frame(text), [js_normal(message)])


def _same_unordered(a: Any, b: Any) -> bool:
    """Like _same, but objects compare as mappings (JSON.stringify puts index-like keys first)."""
    return _same(a, b, ordered=False)


ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


@given(msg_id=ids, reply_to=st.one_of(texts, finite_numbers), text=texts, pid=texts,
       graph=st.dictionaries(texts, st.dictionaries(texts, message_values, max_size=3), max_size=2))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_outgoing_messages_decode_as_what_they_are(msg_id: str, reply_to: Any, text: str, pid: str, graph: dict[str, Any]) -> None:
    def one(frame: str) -> wire.Message:
        [raw] = wire.parse_frame(frame)
        return wire.decode(raw)

    def same(got: wire.Message, want: wire.Message) -> bool:
        return type(got) is type(want) and all(
            _same(getattr(got, name), getattr(want, name)) for name in got.__dataclass_fields__)

    rt = js_normal(reply_to)
    assert same(one(wire.ack(msg_id, reply_to)), wire.Reply(msg_id, rt))
    assert same(one(wire.error(msg_id, reply_to, text)), wire.Reply(msg_id, rt))
    assert same(one(wire.not_found(msg_id, reply_to)), wire.Reply(msg_id, rt))
    assert same(one(wire.dam_error(msg_id, text)), wire.Dam(msg_id, "!", None, None))
    assert same(one(wire.hello(msg_id, pid)), wire.Dam(msg_id, "?", js_normal(pid), None))
    assert same(one(wire.hello_answer(msg_id, pid, reply_to)), wire.Dam(msg_id, "?", js_normal(pid), rt))
    assert same(one(wire.dam_reply(msg_id, "reset-ack", reply_to, None)), wire.Dam(msg_id, "reset-ack", None, rt))
    assert same(one(wire.dam_reply(msg_id, "reset-ack", reply_to, text)), wire.Dam(msg_id, "reset-ack", None, rt))
    put = one(wire.data_reply(msg_id, reply_to, graph))
    assert isinstance(put, wire.Put) and _same(put.reply_to, rt) and _same_unordered(put.graph, js_normal(graph))
    push = one(wire.push(msg_id, graph))
    assert isinstance(push, wire.Put) and push.reply_to is None and _same_unordered(push.graph, js_normal(graph))
    [error_raw] = wire.parse_frame(wire.error(msg_id, reply_to, text))
    assert error_raw["err"] == js_normal(text)


@given(messages=st.lists(st.dictionaries(keys, message_values, max_size=3), max_size=5))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_batches_parse_back_to_their_messages(messages: list[dict[str, Any]]) -> None:
    if not messages:
        assert wire.parse_frame(wire.KEEPALIVE) == []
        return
    frame = wire.batch([wire.encode(m) for m in messages])
    assert _same_unordered(wire.parse_frame(frame), [js_normal(m) for m in messages])


@given(prefix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=6), n=st.integers(1, 600))
@settings(max_examples=30, deadline=None)
def test_no_message_id_is_another_followed_by_digits(prefix: str, n: int) -> None:
    """GunJS derives ids as <id><n>; ours end in a letter so no fresh id collides with such a derivation."""
    fresh = wire.MessageIds(prefix)
    made = [fresh() for _ in range(n)]
    assert len(set(made)) == n
    made_set = set(made)
    for msg_id in made:
        assert not msg_id[-1].isdigit()
        for digits in ("0", "1", "9", "12"):
            assert msg_id + digits not in made_set


# ---------------------------------------------------------------------------------------------
# Found by these tests: a budget of -1e400 once escaped as OverflowError

_BIG = "1" + "0" * 400  # beyond the double range: JSON.parse gives Infinity


def test_a_negative_infinite_budget_decodes_as_the_least_budget() -> None:
    [raw] = wire.parse_frame('{"#":"g","get":{"#":"s","%":-1e400}}')
    get = wire.decode(raw)
    assert isinstance(get, wire.Get) and get.budget == 1


@pytest.mark.parametrize("budget", ["1e400", _BIG, "-" + _BIG, "1e300", "-1e300", "2147483648", "0", "-5", "0.5"])
@pytest.mark.parametrize("where", ["get", "message"])
def test_other_extreme_budgets_decode(budget: str, where: str) -> None:
    """Every other budget spelling decodes: no budget beyond 2**31, at least 1 otherwise."""
    if where == "get":
        text = '{"#":"g","get":{"#":"s","%":' + budget + "}}"
    else:
        text = '{"#":"g","%":' + budget + ',"get":{"#":"s"}}'
    [raw] = wire.parse_frame(text)
    get = wire.decode(raw)
    assert isinstance(get, wire.Get)
    number = json.loads(budget)
    assert get.budget == (None if number >= 2**31 else max(1, int(number)))
