"""The relay engine's rules, synchronously: (state, input) -> effects, with the time given.

No event loop, no sockets, no store: each test puts the engine in a state, feeds it one input
(a frame, a store's answer, a timer) and compares the effects it asks for.
"""

import json
import math
from pathlib import Path

import pytest

from gunrelay.core import wire
from gunrelay.core.engine import (
    Defer,
    Fenced,
    Limits,
    LookUp,
    Merge,
    Now,
    Read,
    ReadWhenRoom,
    RelayEngine,
    Send,
)
from gunrelay.core.fence import Fence, FenceRule, Protected
from gunrelay.core.graph import Field
from gunrelay.core.link import Link
from gunrelay.core.reads import FairQueue, ReadPage

T0 = 1_800_000_000_000.0
NOW = Now(T0, 50.0)


class Ids:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return f"r{self.n}z"


def make_engine(fence=None, **limits):
    acks = []

    def acknowledge(link, reset_id):
        acks.append((link.id, reset_id))
        return None if reset_id == "known" else "Unknown reset id."

    engine = RelayEngine(
        fence if fence is not None else Fence(protected=Protected(("~relaypub",))),
        pid="relaypid", new_id=Ids(), limits=Limits(**limits), acknowledge=acknowledge, now=NOW, relay_pub="relaypub",
    )
    engine.acks = acks
    return engine


def link(engine, name):
    new = Link(name, "127.0.0.1")
    engine.connect(new, NOW)
    engine.take()  # the hello
    return new


def frame(*messages):
    return json.dumps(messages[0] if len(messages) == 1 else list(messages))


def sends(effects):
    """(link id, message) for every Send, in order."""
    return [(e.link.id, json.loads(e.text)) for e in effects if type(e) is Send]


def without_ids(pairs):
    """Sends with each message's own (fresh, counted) id left out."""
    return [(to, {k: v for k, v in message.items() if k != "#"}) for to, message in pairs]


def others(effects):
    return [e for e in effects if type(e) is not Send]


def put(msg_id, soul, state=T0, reply_to=None, **values):
    message = {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {k: state for k in values}}, **values}}}
    if reply_to is not None:
        message["@"] = reply_to
    return message


# -- connections and dedup ---------------------------------------------------------------------


def test_a_new_link_is_greeted_with_the_relays_pid_and_clock():
    engine = make_engine()
    a = Link("a", "127.0.0.1")
    engine.connect(a, NOW)
    [(to, hello)] = sends(engine.take())
    assert to == "a" and hello["dam"] == "?" and hello["pid"] == "relaypid"
    assert hello["clock"] == NOW.wall_ms  # the JS plugin's install mark is taken by the relay's clock
    assert engine.stats.connections == 1 and engine.stats.peak_connections == 1


@pytest.mark.parametrize(
    "first, second, second_applied",
    [
        ("a", "a", False),  # the same id again from the same link
        ("a", "b", False),  # ... or from another: GUN drops it wherever it comes from
    ],
)
def test_a_message_id_seen_before_is_dropped_silently(first, second, second_applied):
    engine = make_engine()
    links = {"a": link(engine, "a"), "b": link(engine, "b")}
    engine.receive(links[first], frame({"#": "same", "get": {"#": "s"}}), NOW)
    assert [type(e) for e in engine.take()] == [Read]
    engine.receive(links[second], frame({"#": "same", "get": {"#": "s"}}), NOW)
    assert (engine.take() != []) is second_applied


def test_ids_are_forgotten_after_two_generations():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "x", "get": {"#": "s"}}), NOW)
    engine.take()
    later = Now(T0, NOW.steady_s + 19)
    engine.receive(a, frame({"#": "x", "get": {"#": "s"}}), later)
    assert [type(e) for e in engine.take()] == [Read]


# -- routing replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply_to, asker_closed, delivered_to",
    [
        ("ask", False, ["a"]),  # to the link the original came from, only
        ("ask", True, []),  # ... unless it has gone
        ("unknown", False, []),  # a reply to nothing we saw ends here
        (7, False, []),  # a reply-to that is not an id
    ],
)
def test_a_reply_goes_to_the_origin_of_what_it_answers(reply_to, asker_closed, delivered_to):
    engine = make_engine()
    a, b, c = link(engine, "a"), link(engine, "b"), link(engine, "c")
    engine.receive(a, frame({"#": "ask", "get": {"#": "s"}}), NOW)
    engine.take()
    a.closed = asker_closed
    engine.receive(b, frame({"#": "r1", "@": reply_to, "ok": 1}), NOW)
    routed = sends(engine.take())
    assert [to for to, _ in routed] == delivered_to
    assert all(message == {"#": "r1", "@": "ask", "ok": 1} for _, message in routed)


def test_a_reply_to_its_own_message_is_not_sent_back():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "ask", "get": {"#": "s"}}), NOW)
    engine.take()
    engine.receive(a, frame({"#": "r1", "@": "ask", "ok": 1}), NOW)
    assert sends(engine.take()) == []


# -- get answering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "get, budget",
    [
        ({"#": "s"}, None),  # a whole node: no budget
        ({"#": "s", ".": "k"}, None),  # one key
        ({"#": "s", ".": {"*": "k"}}, 1),  # a key prefix without '%': RAD's budget of one
        ({"#": {"*": "chat/"}}, 1),  # a soul prefix without '%'
        ({"#": {"*": "chat/"}, "%": 5000}, 5000),  # a budget given is kept
    ],
)
def test_a_get_reads_a_first_page_with_its_budget(get, budget):
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "g", "get": get}), NOW)
    [read] = engine.take()
    assert type(read) is Read and read.job.msg_id == "g" and read.job.query.budget == budget


def _answer(engine, souls, resume=None):
    [read] = engine.take()
    engine.page_read(read.job, ReadPage(souls, resume, spent=1, fields=sum(map(len, souls.values()))), NOW)
    return read.job, engine.take()


def test_a_page_with_data_is_a_put_reply_to_the_asker_only():
    engine = make_engine()
    a, b = link(engine, "a"), link(engine, "b")
    engine.receive(a, frame({"#": "g", "get": {"#": "s"}}), NOW)
    _, effects = _answer(engine, {"s": [("k", '"v"', T0)]})
    assert without_ids(sends(effects)) == [("a", {"@": "g", "put": {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}}})]


def test_nothing_found_is_one_reply_without_put():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "g", "get": {"#": "none"}}), NOW)
    _, effects = _answer(engine, {})
    assert without_ids(sends(effects)) == [("a", {"@": "g"})]


def test_a_page_that_resumes_waits_for_room_then_reads_on():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "g", "get": {"#": "big"}}), NOW)
    job, effects = _answer(engine, {"big": [("a", '"1"', T0)]}, resume=("big", "a"))
    assert [type(e) for e in effects] == [Send, ReadWhenRoom]
    engine.next_page(job)
    [read] = engine.take()
    assert read.job is job and job.query.after == ("big", "a")
    engine.page_read(job, ReadPage({}, None, 0, 0), NOW)
    assert engine.take() == []  # it was answered already: no "not found" after the last page


def test_a_failed_read_is_an_error_to_the_asker():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "g", "get": {"#": "s"}}), NOW)
    [read] = engine.take()
    engine.page_read(read.job, None, NOW)
    [(to, reply)] = sends(engine.take())
    assert to == "a" and reply["@"] == "g" and "Storage read failed" in reply["err"]


def test_fenced_rows_are_never_served():
    fence = Fence([FenceRule("r1", "*", T0 - 1)])
    engine = make_engine(fence)
    a = link(engine, "a")
    engine.receive(a, frame({"#": "g", "get": {"#": "s"}}), NOW)
    _, effects = _answer(engine, {"s": [("old", '"x"', T0 - 5), ("new", '"y"', T0)]})
    [(_, reply)] = sends(effects)
    assert reply["put"]["s"] == {"_": {"#": "s", ">": {"new": T0}}, "new": "y"}


def test_a_get_without_id_only_subscribes():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"get": {"#": "s"}}), NOW)
    assert engine.take() == [] and engine.subscriptions.count_of(a) == 1


def test_a_link_that_goes_takes_its_queued_reads_with_it():
    engine = make_engine()
    engine.reads = FairQueue(in_flight=1)
    a, b = link(engine, "a"), link(engine, "b")
    engine.receive(a, frame({"#": "g1", "get": {"#": "s"}}, {"#": "g2", "get": {"#": "t"}}), NOW)
    [first] = engine.take()
    engine.receive(b, frame({"#": "g3", "get": {"#": "u"}}), NOW)
    assert engine.take() == []  # waits for the one page in flight
    engine.disconnect(a)
    engine.page_read(first.job, ReadPage({}, None, 0, 0), NOW)
    [after] = engine.take()  # a's g2 went with it: b's read is next, and nothing is sent to a
    assert type(after) is Read and after.job.msg_id == "g3"


@pytest.mark.parametrize(
    "max_subscriptions, gets, refused",
    [(2, ["s1", "s2"], []), (2, ["s1", "s2", "s3"], ["g3"]), (2, ["s1", "s2", "s1"], []), (0, ["s1", "s2", "s3"], [])],
)
def test_subscriptions_past_the_limit_refuse_the_get(max_subscriptions, gets, refused):
    engine = make_engine(max_subscriptions=max_subscriptions)
    a = link(engine, "a")
    for n, soul in enumerate(gets, 1):
        engine.receive(a, frame({"#": f"g{n}", "get": {"#": soul}}), NOW)
    errors = [m["@"] for _, m in sends(engine.take()) if "err" in m]
    assert errors == refused


# -- put admission and acks --------------------------------------------------------------------


def _put_and_merge(engine, writer, message, accepted=None):
    engine.receive(writer, frame(message), NOW)
    effects = engine.take()
    merges = [e for e in effects if type(e) is Merge]
    for merge in merges:
        engine.merged(merge.job, merge.fields if accepted is None else accepted, NOW)
    return effects, engine.take()


@pytest.mark.parametrize(
    "soul, state, outcome",
    [
        ("s", T0, "merge"),  # a plain field, now
        ("s", T0 + 500, "defer"),  # ahead of the clock, within the skew: waits for its state
        ("s", T0 + 200_000, "future_state"),  # beyond the skew: refused
        ("~relaypub/reset", T0, "system_space"),  # the relay's own space
        ("fenced/x", T0 - 5, "fenced"),  # at or below a reset's watermark
        ("fenced/x", T0, "merge"),  # above it
        ("~notapub/x", T0, "sea"),  # a user space that is no pub: SEA refuses
    ],
)
def test_each_field_is_admitted_deferred_or_refused(soul, state, outcome):
    fence = Fence([FenceRule("reset-1", "fenced", T0 - 1)], protected=Protected(("~relaypub",)))
    engine = make_engine(fence, max_skew_ms=120_000)
    a = link(engine, "a")
    engine.receive(a, frame(put("p", soul, state=state, k="v")), NOW)
    effects = engine.take()
    kinds = [type(e) for e in effects]
    if outcome == "merge":
        assert kinds == [Merge] and effects[0].fields == [Field(soul, "k", "v", state)]
    elif outcome == "defer":
        assert kinds == [Defer] and effects[0].at_ms == state
    else:
        replies = [m for _, m in sends(effects)]
        assert len(replies) == 1 and replies[0]["@"] == "p" and replies[0]["err"]
        assert engine.stats.errors == {outcome: 1}
        assert (Fenced in kinds) is (outcome == "fenced")


def test_an_invalid_graph_is_an_error_and_nothing_is_merged():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "bad", "put": {"s": {"_": {"#": "s", ">": {}}, "k": 1}}}), NOW)
    [(_, reply)] = sends(engine.take())
    assert reply["@"] == "bad" and "no state" in reply["err"]


@pytest.mark.parametrize(
    "merged, reply",
    [
        ("accepted", {"ok": True}),  # durable: ok
        ("kept", {"ok": True}),  # HAM kept the stored value: still ok, so callbacks never hang
        ("failed", {"err": "Storage write failed (disk full); nothing of it was acknowledged, send it again later."}),
    ],
)
def test_the_writer_gets_one_reply_once_the_merge_is_durable(merged, reply):
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame(put("p", "s", k="v")), NOW)
    [merge] = engine.take()
    assert sends(engine.take()) == []  # nothing before the store answers
    if merged == "failed":
        engine.merged(merge.job, None, NOW, "disk full")
    else:
        engine.merged(merge.job, merge.fields if merged == "accepted" else [], NOW)
    [(to, message)] = sends(engine.take())
    assert to == "a" and message == {"#": message["#"], "@": "p", **reply}


def test_a_put_partly_refused_names_what_was_refused_after_the_rest_is_durable():
    engine = make_engine(max_skew_ms=1000)
    a = link(engine, "a")
    message = {"#": "p", "put": {
        "s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"},
        "t": {"_": {"#": "t", ">": {"k": T0 + 10_000}}, "k": "far"},
    }}
    effects, after = _put_and_merge(engine, a, message)
    assert [type(e) for e in effects] == [Merge]
    [(_, reply)] = sends(after)
    assert reply["@"] == "p" and "ahead of the relay's clock" in reply["err"]


def test_a_put_without_id_is_merged_and_not_answered():
    engine = make_engine()
    a = link(engine, "a")
    effects, after = _put_and_merge(engine, a, {"put": put("x", "s", k="v")["put"]})
    assert [type(e) for e in effects] == [Merge] and sends(after) == []


def test_a_deferred_write_is_judged_again_if_the_fence_changed_meanwhile():
    fence = Fence()
    engine = make_engine(fence, max_skew_ms=120_000)
    a = link(engine, "a")
    engine.receive(a, frame(put("p", "room", state=T0 + 500, k="v")), NOW)
    [defer] = engine.take()
    fence.add(FenceRule("reset-2", "room", T0 + 1000))  # a reset issued before the state is reached
    engine.due(defer.job, defer.fields, Now(T0 + 500, 51.0))
    effects = engine.take()
    assert [type(e) for e in effects] == [Fenced, Send]
    assert "Refused by reset reset-2" in json.loads(effects[1].text)["err"]


SEA_VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "sea.json").read_text())
WRITE_BLOCK_CASES = [v for v in SEA_VECTORS if "graph" in v and "write block" in v["name"]]


@pytest.mark.parametrize("case", WRITE_BLOCK_CASES, ids=[v["name"] for v in WRITE_BLOCK_CASES])
def test_a_certificate_write_block_list_is_looked_up_before_merging(case):
    now = Now(float(case["now"]), 50.0)
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame(put("w", case["soul"], state=case["state"], **{case["key"]: case["value"]})), now)
    [lookup] = engine.take()
    assert type(lookup) is LookUp and lookup.wanted
    graph, states = case["graph"], case["graph_states"]
    found = [
        {soul: [(writer, json.dumps(graph[soul][writer]), states[soul][writer])]} if writer in graph.get(soul, {}) else {}
        for soul, writer in lookup.wanted
    ]
    engine.looked_up(lookup.job, lookup, found, now)
    effects = engine.take()
    if case["expect"] is None:
        [merge] = effects
        assert type(merge) is Merge and [f.key for f in merge.fields] == [case["key"]]
    else:
        [(_, reply)] = sends(effects)
        assert reply["err"] == case["expect"]


def test_a_failed_look_up_is_an_error_to_the_writer():
    case = WRITE_BLOCK_CASES[0]
    now = Now(float(case["now"]), 50.0)
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame(put("w", case["soul"], state=case["state"], **{case["key"]: case["value"]})), now)
    [lookup] = engine.take()
    engine.looked_up(lookup.job, lookup, None, now)
    [(_, reply)] = sends(engine.take())
    assert reply["@"] == "w" and "write-block list" in reply["err"]


# -- fan-out -----------------------------------------------------------------------------------


def test_an_accepted_write_goes_to_each_subscriber_as_it_subscribed():
    engine = make_engine()
    writer, whole, one_key, other, gone = (link(engine, n) for n in ("writer", "whole", "one_key", "other", "gone"))
    for sub, get in ((whole, {"#": "room"}), (one_key, {"#": "room", ".": "k"}), (other, {"#": "elsewhere"}), (gone, {"#": "room"})):
        engine.receive(sub, frame({"get": get}), NOW)
    gone.closed = True
    _, after = _put_and_merge(engine, writer, put("p", "room", j="J", k="K"))
    by_link = {to: message for to, message in sends(after)}
    assert set(by_link) == {"writer", "whole", "one_key"}
    assert by_link["writer"]["@"] == "p" and by_link["writer"]["ok"] is True  # only the ack: it did not subscribe
    assert by_link["whole"]["put"]["room"] == {"_": {"#": "room", ">": {"j": T0, "k": T0}}, "j": "J", "k": "K"}
    assert by_link["one_key"]["put"]["room"] == {"_": {"#": "room", ">": {"k": T0}}, "k": "K"}


def test_only_what_changed_the_store_is_pushed():
    engine = make_engine()
    writer, watcher = link(engine, "writer"), link(engine, "watcher")
    engine.receive(watcher, frame({"get": {"#": "s"}}), NOW)
    _, after = _put_and_merge(engine, writer, put("p", "s", k="older"), accepted=[])
    assert [to for to, _ in sends(after)] == ["writer"]


def test_a_push_echoed_back_is_dropped():
    engine = make_engine()
    writer, watcher = link(engine, "writer"), link(engine, "watcher")
    engine.receive(watcher, frame({"get": {"#": "s"}}), NOW)
    _, after = _put_and_merge(engine, writer, put("p", "s", k="v"))
    [push] = [m for to, m in sends(after) if to == "watcher"]
    engine.receive(watcher, frame(push), NOW)
    assert engine.take() == []


def test_a_put_answering_a_get_goes_on_to_the_asker_with_the_passed_fields_only():
    engine = make_engine(max_skew_ms=1000)
    asker, answerer = link(engine, "asker"), link(engine, "answerer")
    engine.receive(asker, frame({"#": "ask", "get": {"#": "s"}}), NOW)
    engine.take()
    message = {"#": "ans", "@": "ask", "put": {
        "s": {"_": {"#": "s", ">": {"k": T0, "far": T0 + 10_000}}, "k": "v", "far": "x"},
    }}
    engine.receive(answerer, frame(message), NOW)
    passed = [(to, m) for to, m in sends(engine.take()) if to == "asker"]
    assert passed == [("asker", {"#": "ans", "@": "ask", "put": {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}}})]


def test_the_relays_own_writes_are_pushed_to_subscribers():
    engine = make_engine()
    watcher = link(engine, "watcher")
    engine.receive(watcher, frame({"get": {"#": "~relaypub/reset"}}), NOW)
    engine.published([Field("~relaypub/reset", "reset_id", "r-1", T0)], NOW)
    [(to, push)] = sends(engine.take())
    assert to == "watcher" and push["put"]["~relaypub/reset"]["reset_id"] == "r-1"


# -- limits and bad frames ---------------------------------------------------------------------


def test_a_frame_over_the_message_rate_is_refused_whole():
    engine = make_engine(max_messages_per_s=1, message_burst=2)
    a = link(engine, "a")
    engine.receive(a, frame(put("p1", "s", k=1), put("p2", "s", k=2), put("p3", "s", k=3)), NOW)
    effects = engine.take()
    assert others(effects) == []  # nothing applied
    assert [m["@"] for _, m in sends(effects)] == ["p1", "p2", "p3"] and engine.stats.refused == {"message_rate": 3}


@pytest.mark.parametrize(
    "text, error",
    [
        ("{not json", "DAM JSON parse error"),
        ("7", "must be a JSON object or an array"),
        ("x" * 70, "Message too big! The limit is 64 bytes."),
    ],
)
def test_a_bad_frame_is_a_dam_error(text, error):
    engine = make_engine(max_frame_bytes=64)
    a = link(engine, "a")
    engine.receive(a, text, NOW)
    [(_, reply)] = sends(engine.take())
    assert reply["dam"] == "!" and error in reply["err"]


def test_a_bug_costs_one_message_only(monkeypatch):
    engine = make_engine()
    a = link(engine, "a")

    def broken(link, get):
        raise RuntimeError("bug")

    monkeypatch.setattr(engine, "_on_get", broken)
    engine.receive(a, frame({"#": "g", "get": {"#": "s"}}, put("p", "s", k="v")), NOW)
    effects = engine.take()
    assert [type(e).__name__ for e in effects] == ["Failed", "Send", "Merge"]
    assert "Internal relay error" in json.loads(effects[1].text)["err"]


# -- dam -------------------------------------------------------------------------------------


def test_the_hello_is_answered_and_the_pid_remembered():
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "h", "dam": "?", "pid": "client-pid"}), Now(T0 + 5, 51.0))
    [(_, answer)] = sends(engine.take())
    assert answer["@"] == "h" and answer["pid"] == "relaypid" and a.pid == "client-pid"
    assert answer["clock"] == T0 + 5


@pytest.mark.parametrize("reset_id, reply", [("known", {"ok": True}), ("other", {"err": "Unknown reset id."})])
def test_a_reset_acknowledgement_is_asked_of_the_control_and_answered(reset_id, reply):
    engine = make_engine()
    a = link(engine, "a")
    engine.receive(a, frame({"#": "ra", "dam": "reset-ack", "reset": reset_id}), NOW)
    [(_, answer)] = sends(engine.take())
    assert engine.acks == [("a", reset_id)]
    assert answer == {"#": answer["#"], "dam": "reset-ack", "@": "ra", **reply}


def test_a_rotated_scope_refuses_every_write_but_serves_its_data():
    fence = Fence([FenceRule("rot-1", "old", math.inf, serves=True)])
    engine = make_engine(fence)
    a = link(engine, "a")
    engine.receive(a, frame(put("p", "old/x", state=T0, k="v")), NOW)
    [(_, reply)] = sends(engine.take()[1:])
    assert "was rotated" in reply["err"]
    engine.receive(a, frame({"#": "g", "get": {"#": "old/x"}}), NOW)
    _, effects = _answer(engine, {"old/x": [("k", '"v"', T0 - 5)]})
    assert [m["put"]["old/x"]["k"] for _, m in sends(effects)] == ["v"]


def test_wire_keepalive_is_an_empty_batch():
    engine = make_engine()
    a = link(engine, "a")
    engine.keepalive([a])
    assert sends(engine.take()) == [("a", [])] and wire.KEEPALIVE == "[]"
