"""The wire parser against frames recorded from real GunJS (tests/vectors/frames.json).

The frames were logged by a proxy between real gun.js/sea.js clients and the reference Node relay
(npm gun 0.2020.1241); see tools/vectors/record_frames.js. Every frame must parse, every message
must decode to the kind its raw keys say, every put graph must flatten into fields whose states
are exactly the node's ``_['>']`` entries, and every get must read back the soul, key lex and
budget the client sent.

The expectations below are computed from the raw JSON with the standard library, independently
of ``gunrelay.core.wire``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gunrelay.core import graph, wire
from gunrelay.core.lex import Lex

FRAMES_FILE = Path(__file__).resolve().parents[1] / "vectors" / "frames.json"
FRAMES: list[dict[str, Any]] = json.loads(FRAMES_FILE.read_text(encoding="utf-8"))

SCENARIOS = {
    "connect",
    "put-callback",
    "nested-put",
    "set",
    "once-node",
    "once-key",
    "map-once",
    "on-live",
    "chunked-node",
    "lex-get",
    "null-delete",
    "sea-user",
    "reconnect",
    "keepalive",
}


def _messages(text: str, **hooks: Any) -> list[Any]:
    data = json.loads(text, **hooks)
    return data if isinstance(data, list) else [data]


def _frame_id(index: int, frame: dict[str, Any]) -> str:
    return f"{index:03d}-{frame['scenario']}-{frame['dir'].replace('>', '')}"


# (id, frame, raw message, the same message with every number kept as its JSON text)
MESSAGES = [
    (f"{_frame_id(i, frame)}-{j}", frame, raw, tokens)
    for i, frame in enumerate(FRAMES)
    for j, (raw, tokens) in enumerate(
        zip(_messages(frame["text"]), _messages(frame["text"], parse_float=str, parse_int=str))
    )
]


def _expected_kind(raw: dict[str, Any]) -> type:
    if "dam" in raw:
        return wire.Dam
    if "get" in raw:
        return wire.Get
    if "put" in raw:
        return wire.Put
    if "@" in raw:
        return wire.Reply
    return wire.Other


def _select(kind: type) -> list[Any]:
    return [pytest.param(frame, raw, tokens, id=mid) for mid, frame, raw, tokens in MESSAGES if _expected_kind(raw) is kind]


PUTS = _select(wire.Put)
GETS = _select(wire.Get)


# ---------------------------------------------------------------------------------------------
# the recording itself


def test_the_recording_covers_every_scenario_both_ways():
    assert {f["scenario"] for f in FRAMES} == SCENARIOS
    for scenario in SCENARIOS - {"keepalive"}:
        dirs = {f["dir"] for f in FRAMES if f["scenario"] == scenario}
        assert dirs == {"C>R", "R>C"}, scenario
    assert all(set(f) >= {"dir", "text", "scenario"} and f["dir"] in ("C>R", "R>C") for f in FRAMES)


def test_the_recording_holds_the_shapes_worth_testing():
    raws = [raw for _, _, raw, _ in MESSAGES]
    texts = [f["text"] for f in FRAMES]
    assert "[]" in texts  # keepalive
    assert any(t.startswith("[{") for t in texts)  # batches
    assert any("##" in r and "get" in r for r in raws)  # re-subscription / forwarded get with a hash
    assert any(isinstance(r.get("get", {}).get("."), dict) and "%" in r["get"] for r in raws)  # lex + budget
    assert any(isinstance(r.get("%"), str) and "put" in r for r in raws)  # memory chunk pointer
    assert any("><" in r for r in raws)
    states = [
        s for r in raws if "put" in r for node in r["put"].values() for s in node["_"][">"].values()
    ]
    assert any(isinstance(s, float) and s != int(s) for s in states)  # fractional HAM states
    values = [v for r in raws if "put" in r for node in r["put"].values() for k, v in node.items() if k != "_"]
    assert None in values  # tombstones
    assert any(isinstance(v, dict) for v in values)  # relations
    assert any(isinstance(v, str) and v.startswith('{":"') for v in values)  # SEA-signed values
    assert any(soul.startswith("~") for r in raws if "put" in r for soul in r["put"])  # user space


# ---------------------------------------------------------------------------------------------
# frames and messages


@pytest.mark.parametrize("frame", [pytest.param(f, id=_frame_id(i, f)) for i, f in enumerate(FRAMES)])
def test_frame_parses_to_its_messages(frame):
    messages = wire.parse_frame(frame["text"])
    assert type(messages) is list
    assert messages == _messages(frame["text"])
    if frame["text"] == "[]":
        assert messages == []
    for raw in messages:
        assert type(raw) is dict


@pytest.mark.parametrize("frame,raw,tokens", [pytest.param(f, r, t, id=m) for m, f, r, t in MESSAGES])
def test_message_decodes_to_the_kind_its_keys_say(frame, raw, tokens):
    assert len({"dam", "get", "put"} & raw.keys()) <= 1  # real messages are never ambiguous
    decoded = wire.decode(raw)  # a MessageError here is a relay bug
    assert type(decoded) is _expected_kind(raw)
    assert decoded.msg_id == raw["#"]
    if isinstance(decoded, wire.Dam):
        assert (decoded.kind, decoded.pid, decoded.reply_to) == (raw["dam"], raw.get("pid"), raw.get("@"))
    elif isinstance(decoded, wire.Put):
        assert decoded.reply_to == raw.get("@")
        assert decoded.graph == raw["put"]
    elif isinstance(decoded, wire.Reply):
        assert decoded.reply_to == raw["@"]
        assert "put" not in raw


# ---------------------------------------------------------------------------------------------
# puts


@pytest.mark.parametrize("frame,raw,tokens", PUTS)
def test_put_graph_flattens_into_one_field_per_key_with_its_exact_state(frame, raw, tokens):
    put_graph = raw["put"]
    fields = graph.fields_of_put(put_graph)  # an InvalidGraph here is a relay bug
    expected = {(soul, key) for soul, node in put_graph.items() for key in node if key != "_"}
    assert len(fields) == len(expected)
    assert {(f.soul, f.key) for f in fields} == expected
    for field in fields:
        node = put_graph[field.soul]
        state = node["_"][">"][field.key]
        assert field.state == state and type(field.state) is type(state)
        assert field.value == node[field.key] and type(field.value) is type(node[field.key])
        # the state survives to the digit: re-encoded, it is the JSON text the peer sent
        assert wire.encode(field.state) == tokens["put"][field.soul]["_"][">"][field.key]


@pytest.mark.parametrize("frame,raw,tokens", PUTS)
def test_put_graph_round_trips_through_node_and_encode(frame, raw, tokens):
    put_graph = raw["put"]
    fields = graph.fields_of_put(put_graph)
    rebuilt = {
        soul: wire.node(soul, [(f.key, f.value, f.state) for f in fields if f.soul == soul]) for soul in put_graph
    }
    text = wire.encode({"#": raw["#"], "put": rebuilt})
    expected = {
        soul: {
            **{key: value for key, value in node.items() if key != "_"},
            "_": {meta: node["_"][meta] for meta in ("#", ">") if meta in node["_"]},
        }
        for soul, node in put_graph.items()
    }
    assert json.loads(text) == {"#": raw["#"], "put": expected}
    # and the wire text of every value and state is unchanged
    assert _messages(text, parse_float=str, parse_int=str)[0]["put"] == {
        soul: {**{k: v for k, v in node.items() if k != "_"}, "_": {m: node["_"][m] for m in ("#", ">")}}
        for soul, node in tokens["put"].items()
    }


# ---------------------------------------------------------------------------------------------
# gets


def _lex(spec: Any, reverse: bool) -> Lex:
    if isinstance(spec, str):
        return Lex(exact=spec, reverse=reverse)
    return Lex(
        eq=spec.get("="),
        prefix=spec.get("*"),
        start=spec.get(">"),
        end=spec.get("<"),
        reverse=reverse or spec.get("-") is True,
    )


@pytest.mark.parametrize("frame,raw,tokens", GETS)
def test_get_reads_back_soul_key_lex_and_budget(frame, raw, tokens):
    get = wire.decode(raw)
    spec = raw["get"]
    reverse = spec.get("-") is True
    soul = spec["#"]
    if isinstance(soul, str):
        assert (get.soul, get.soul_lex) == (soul, None)
    else:
        assert get.soul is None and get.soul_lex == _lex(soul, reverse)
    key = spec.get(".")
    assert get.key == (None if key is None else _lex(key, reverse))
    assert get.budget == spec.get("%", raw.get("%"))


def test_relay_answers_to_lex_gets_match_our_lex():
    """Every key the reference relay returned for a lex get is one our Lex matches."""
    lex_gets = [raw for _, f, raw, _ in MESSAGES if f["dir"] == "C>R" and isinstance(raw.get("get", {}).get("."), dict)]
    assert len(lex_gets) >= 3
    for raw in lex_gets:
        get = wire.decode(raw)
        answers = [r for _, f, r, _ in MESSAGES if f["dir"] == "R>C" and r.get("@") == raw["#"] and "put" in r]
        assert answers, raw
        for answer in answers:
            node = answer["put"][get.soul]
            keys = [k for k in node if k != "_"]
            assert keys and all(get.key.matches(k) for k in keys), (raw, answer)
