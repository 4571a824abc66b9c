"""Coverage-guided fuzzing (atheris/libFuzzer) of the path every websocket text frame takes:

    bytes -> text -> wire.parse_frame -> wire.decode -> for a put: graph.fields_of_put
          -> sea.check_field for each field (+ HAM and a wire round trip of the accepted fields)
          -> for a get: lex matching and the scan lower bound

Only the documented exceptions may escape each step (FrameError, MessageError, InvalidGraph;
check_field never raises). Anything else is a crash that libFuzzer reports with the input that
caused it (written to ./crash-<sha1>, or under -artifact_prefix).

Checks beyond "no undocumented exception":
* check_field's verdict is None or a string, and is the same without its catch-all (sea._check):
  an exception inside SEA would otherwise pass for a refusal ("Unverified data.");
* every accepted field is a GUN value with a finite state; HAM keeps a replayed field
  (CURRENT) and breaks an equal-state tie between two fields one way only;
* the accepted fields, sent back out as wire nodes (wire.node + wire.push), parse and validate
  to the same fields;
* a lex match never sorts before the lex's lower_bound() (the start of an ordered SQL scan).

Mutation: libFuzzer's byte-level mutations mostly break the JSON, so by default a JSON-aware
mutator (``json_mutator``) edits the parsed frame instead: it replaces values with numbers,
strings and objects that matter to GUN (1e400, integers beyond 2**53 or the double range, -0,
lone surrogates, relations, lex objects), renames keys to GUN's one-character keys, deletes,
copies and wraps subtrees, and recurses into strings that are themselves JSON (SEA's signed
values and certificates). One mutation in five is still libFuzzer's own (atheris.Mutate).

Environment:
  FUZZ_BYTES_ONLY=1       libFuzzer's byte-level mutations only (no JSON-aware mutator).

Run (see fuzz/README.md):
  .venv/bin/python fuzz/make_corpus.py
  .venv/bin/python fuzz/fuzz_frames.py -dict=fuzz/gun.dict -atheris_runs=2000000 fuzz/corpus fuzz/seeds
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["gunrelay"]):
    from gunrelay.core import graph, ham, lex, sea, wire  # noqa: F401  (lex: instrumented for the get checks)
    from gunrelay.core.jsjson import stringify, utf16_key

# the clock SEA sees: inside the span of the recorded vectors, so that <?N souls and certificate
# expiries in seeds taken from tests/vectors behave as they were recorded
NOW_MS = 1795580709260.0
PROBES = ["", "a", "ab", "b", "room/", "room/b", "~", "~@", "#", "\ue000", "\uffff", "\U0001f600", "\ud83d", "\x00", "zz"]


def _blocked(soul: str, writer: str) -> bool:
    return soul.endswith("blocklist")


def _pair(text: str) -> str:
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def _js_view(field: graph.Field) -> tuple[Any, ...]:
    value: Any = field.value
    if type(value) is dict:
        value = ("rel", _pair(value["#"]))
    elif type(value) is str:
        value = ("str", _pair(value))
    elif type(value) is bool or value is None:
        value = ("lit", value)
    else:
        value = ("num", float(value) + 0.0)
    return (_pair(field.soul), _pair(field.key), value, float(field.state) + 0.0)


def check_get(get: wire.Get) -> None:
    assert get.soul is None or (type(get.soul) is str and get.soul)
    assert get.budget is None or (type(get.budget) is int and 1 <= get.budget < 2**31)
    for query in (get.soul_lex, get.key):
        if query is None:
            continue
        bound = query.lower_bound()
        probes = PROBES + [p for p in (query.exact, query.eq, query.prefix, query.start, query.end) if p is not None]
        for probe in probes:
            for text in (probe, probe + "x", probe[:-1]):
                if query.matches(text) and bound is not None:
                    assert text >= bound, ("lower_bound skips a match", query, text)


def check_put(put: wire.Put) -> None:
    try:
        fields = graph.fields_of_put(put.graph)
    except graph.InvalidGraph:
        return
    for field in fields:
        assert type(field.soul) is str and field.soul and type(field.key) is str and field.key != "_"
        assert graph.check_value(field.value) is None, field
        assert type(field.state) in (int, float) and field.state == field.state and abs(field.state) != float("inf")
        verdict = sea.check_field(field.soul, field.key, field.value, field.state, NOW_MS, _blocked)
        assert verdict is None or type(verdict) is str, verdict
        bare = sea._check(field.soul, field.key, field.value, field.state, NOW_MS, _blocked)
        assert bare == verdict, (verdict, bare)
        assert ham.compare(field.state, field.value, field.state, field.value) is ham.Verdict.CURRENT
    for a, b in zip(fields, fields[1:4]):
        forward = ham.compare(a.state, a.value, a.state, b.value)
        backward = ham.compare(a.state, b.value, a.state, a.value)
        if utf16_key(stringify(a.value)) == utf16_key(stringify(b.value)):
            assert forward is backward is ham.Verdict.CURRENT
        else:
            assert {forward, backward} == {ham.Verdict.INCOMING, ham.Verdict.CURRENT}
    if not fields:
        return
    # what the relay would push out for these fields parses back to the same fields
    by_soul: dict[str, list[tuple[str, Any, Any]]] = {}
    for field in fields:
        by_soul.setdefault(field.soul, []).append((field.key, field.value, field.state))
    frame = wire.push("fuzz1z", {soul: wire.node(soul, items) for soul, items in by_soul.items()})
    frame.encode("utf-8")  # a websocket text frame: no lone surrogates in the text itself
    [raw] = wire.parse_frame(frame)
    again = wire.decode(raw)
    assert isinstance(again, wire.Put)
    back = graph.fields_of_put(again.graph)
    assert sorted(map(repr, map(_js_view, back))) == sorted(map(repr, map(_js_view, fields))), (fields, back)


def one_message(raw: Any) -> None:
    try:
        message = wire.decode(raw)
    except wire.MessageError:
        return
    if isinstance(message, wire.Get):
        check_get(message)
    elif isinstance(message, wire.Put):
        check_put(message)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris's name)
    text = data.decode("utf-8", "replace")  # a websocket text frame is valid UTF-8
    try:
        raws = wire.parse_frame(text)
    except wire.FrameError:
        return
    assert type(raws) is list
    for raw in raws:
        one_message(raw)


# ---------------------------------------------------------------------------------------------
# JSON-aware mutation

class _Num:
    """A number written verbatim (1e400, -0, a 400-digit integer): what json.dumps cannot write."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


INTERESTING: list[Any] = [
    None, True, False, 0, 1, -1, 9, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 1e21, 1e-7, 5e-324, 0.1,
    1795580709260, 1795580709260.5, 1795580709260.001, -1795580709260, 1e300, -1e300,
    _Num("1e400"), _Num("-1e400"), _Num("-0"), _Num("1" + "0" * 400), _Num("-" + "9" * 320), _Num("1E2"),
    "", "a", "x", "_", "#", "~", "~@", "~@alice", "<?60", "<?-1", "pub", "inbox", "*", "\ud800", "\udc00", "\ud83d",
    "\U0001f600", "\ue000", "\uffff", "\x00", "SEA{}", '{":":1,"~":"AAAA"}', "[object Object]",
    {}, [], {"#": "x"}, {"#": ""}, {"#": 1}, {"#": "a", "b": 1}, {"*": "a"}, {">": "a", "<": "b"}, {"=": "k"}, {"-": True},
    {"_": {"#": "s", ">": {}}}, [{}], {"m": {"c": "*", "w": {"*": "inbox"}}, "s": "AAAA"},
]
GUN_KEYS = ["#", "@", ".", "_", ">", "<", "*", "=", "-", "%", ":", "~", "+", "put", "get", "dam", "ok", "err", "pid",
            "reset", "m", "s", "c", "w", "e", "wb", "pub", "x"]


def _dump(value: Any) -> str:
    if isinstance(value, _Num):
        return value.text
    if isinstance(value, float):
        if math.isinf(value):
            return "1e400" if value > 0 else "-1e400"
        if value != value:
            return "0"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value)  # ASCII, lone surrogates escaped


def _copy(value: Any) -> Any:
    """A deep copy (containers are never shared between two places of a tree)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _slots(value: Any, out: list[tuple[Any, Any]], depth: int = 0) -> None:
    """Every (container, key-or-index) in ``value``, containers first."""
    if depth > 40:
        return
    if isinstance(value, dict):
        for k in list(value):
            out.append((value, k))
            _slots(value[k], out, depth + 1)
    elif isinstance(value, list):
        for i in range(len(value)):
            out.append((value, i))
            _slots(value[i], out, depth + 1)


def _mutate_string(text: str, rng: random.Random) -> str:
    if text[:1] in "{[" and rng.random() < 0.7:  # JSON inside a string: a signed value, a certificate
        try:
            inner = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            return _dump(_mutate_tree(inner, rng))
    i = rng.randrange(len(text) + 1)
    choice = rng.random()
    if choice < 0.3 and text:
        return text[:i] + text[i + 1:]
    piece = rng.choice(["a", "/", "~", "#", "<?", "=", "\ud800", "\U0001f600", "\ue000", "0", "A", "+", " "])
    return text[:i] + piece + (text[i + 1:] if choice < 0.6 else text[i:])


def _mutate_tree(value: Any, rng: random.Random) -> Any:
    slots: list[tuple[Any, Any]] = []
    _slots(value, slots)
    if not slots or rng.random() < 0.05:
        return rng.choice([value, [value], {"#": "m1", "put": value}, {"#": "g1", "get": value}, [value, value]])
    container, slot = rng.choice(slots)
    old = container[slot]
    op = rng.random()
    if op < 0.35:
        container[slot] = _copy(rng.choice(INTERESTING))
    elif op < 0.55 and isinstance(old, str):
        container[slot] = _mutate_string(old, rng)
    elif op < 0.62 and isinstance(old, (int, float)) and not isinstance(old, bool):
        container[slot] = rng.choice([old + 1, old - 1, -old, old * 2, old + 0.001, float(old), str(old)])
    elif op < 0.72 and isinstance(container, dict):  # rename the key (keeping order)
        items = [(rng.choice(GUN_KEYS) if k == slot else k, v) for k, v in container.items()]
        container.clear()
        container.update(items)
    elif op < 0.80:
        del container[slot]
    elif op < 0.90:  # copy another subtree here
        other_container, other_slot = rng.choice(slots)
        container[slot] = _copy(other_container[other_slot])
    elif isinstance(container, dict):  # add a key
        container[rng.choice(GUN_KEYS)] = _copy(rng.choice(INTERESTING))
    else:
        container.insert(slot, _copy(old))
    return value


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.2:
        return atheris.Mutate(data, max_size)
    try:
        value = json.loads(data.decode("utf-8", "replace"))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            value = _mutate_tree(value, rng)
        out = _dump(value).encode("utf-8")
    except (ValueError, RecursionError, OverflowError):  # not JSON, too deep, a number too big to move
        return atheris.Mutate(data, max_size)
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)


def main() -> None:
    if os.environ.get("FUZZ_BYTES_ONLY") == "1":
        atheris.Setup(sys.argv, TestOneInput)
    else:
        atheris.Setup(sys.argv, TestOneInput, custom_mutator=json_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
