import json

import pytest

from gunrelay.core import wire
from gunrelay.core.lex import Lex


def test_frames_are_objects_or_arrays():
    assert wire.parse_frame('{"#":"a"}') == [{"#": "a"}]
    assert wire.parse_frame("[]") == []
    assert len(wire.parse_frame('[{"#":"a"},{"#":"b"}]')) == 2
    for bad in ("{", "5", '"x"', "NaN", '{"a":NaN}', '{"a":Infinity}', "[" * 100000):
        with pytest.raises(wire.FrameError):
            wire.parse_frame(bad)


def test_what_orjson_refuses_but_json_parse_accepts():
    [msg] = wire.parse_frame('{"#":"a","x":"\\ud800","n":123456789012345678901234567890}')
    assert msg["x"] == "\ud800" and msg["n"] == 123456789012345678901234567890


def test_decode_kinds():
    assert wire.decode({"#": "1", "dam": "?", "pid": "p"}) == wire.Dam("1", "?", "p", None)
    assert isinstance(wire.decode({"#": "1", "put": {}}), wire.Put)
    assert isinstance(wire.decode({"#": "1", "@": "0", "ok": True}), wire.Reply)
    assert isinstance(wire.decode({"#": "1", "ping": 1}), wire.Other)
    get = wire.decode({"#": "g", "get": {"#": "s", ".": {"*": "ap"}, "%": 50000}})
    assert get == wire.Get("g", "s", None, Lex(prefix="ap"), 50000)
    souls = wire.decode({"#": "g", "get": {"#": {"*": "lex"}}})
    assert souls.soul is None and souls.soul_lex == Lex(prefix="lex")


@pytest.mark.parametrize(
    "raw",
    [
        {"#": {"x": 1}, "get": {"#": "s"}},
        {"#": "g", "get": "s"},
        {"#": "g", "get": {"#": ""}},
        {"#": "g", "get": {"#": 5}},
        {"#": "g", "get": {"#": "s", ".": 5}},
        {"#": "g", "get": {"#": "s", "%": "many"}},
        5,
    ],
)
def test_malformed_messages_raise_with_the_id_to_answer(raw):
    with pytest.raises(wire.MessageError):
        wire.decode(raw)


def test_encoding_lone_surrogates_like_json_stringify():
    text = wire.push("id", {"s": wire.node("s", [("k", "\ud800", 1)])})
    assert "\\ud800" in text and json.loads(text)["put"]["s"]["k"] == "\ud800"


def test_ids_are_unique_and_batches_are_arrays():
    ids = wire.MessageIds("ab")
    made = [ids() for _ in range(1000)]
    assert len(set(made)) == 1000 and all(i.startswith("ab") and i[-1] == "z" for i in made)
    assert wire.batch(["{}"]) == "{}" and wire.batch(["{}", "{}"]) == "[{},{}]"


# -- a peer's half: its requests decode as the relay decodes them, and it reads the answers ----


def test_a_peers_requests_are_what_the_relay_decodes():
    assert wire.decode(json.loads(wire.get_request("g1", "room"))) == wire.Get("g1", "room", None, None, None)
    assert wire.decode(json.loads(wire.get_request("g2", "room", "topic"))) == wire.Get("g2", "room", None, Lex(exact="topic"), None)
    graph = {"room": wire.node("room", [("topic", "hi", 5)])}
    assert wire.decode(json.loads(wire.put_request("p1", graph))) == wire.Put("p1", None, graph)
    assert wire.decode(json.loads(wire.hi("h1"))) == wire.Dam("h1", wire.HI, None, None)
    assert wire.decode(json.loads(wire.reset_ack_request("a1", "r-7"))) == wire.Dam("a1", wire.RESET_ACK, None, None, "r-7")
    answer = wire.decode(json.loads(wire.hello_answer("h2", "mypid", "hello1")))
    assert answer == wire.Dam("h2", wire.HELLO, "mypid", "hello1")


def test_a_peer_reads_answers():
    ack = wire.answer_of(json.loads(wire.ack("x", "p1")))
    assert ack == wire.Answer(reply_to="p1", settled=True, ok=True, err=None, more=False)
    refused = wire.answer_of(json.loads(wire.error("x", "p1", "no")))
    assert refused.settled and not refused.ok and refused.err == "no"
    data = wire.answer_of(json.loads(wire.data_reply("x", "g1", {})))
    assert data.reply_to == "g1" and not data.settled and not data.more
    assert wire.answer_of({"@": "g1", "put": {}, "%": 1}).more
    assert not wire.answer_of(json.loads(wire.not_found("x", "g1"))).settled
    assert wire.answer_of(json.loads(wire.dam_reply("x", wire.RESET_ACK, "a1", None))).ok
    assert wire.answer_of(json.loads(wire.push("x", {}))).reply_to is None
