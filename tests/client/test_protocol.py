"""The peer's protocol without I/O: what it sends, what it makes of what it receives, and what it
remembers in between (requests waiting for answers, dedup, followed souls)."""

from __future__ import annotations

import json
from typing import Any

from gunrelay.core import wire
from gunrelay.core.fence import Fence, FenceRule
from gunrelay.client.protocol import Answered, Forwarded, Graph, PeerProtocol, Send, Settled


def protocol(**options: Any) -> PeerProtocol:
    clock = [100.0]
    return PeerProtocol(Fence(), steady=lambda: clock[0], **options)


def sent(text: str) -> dict[str, Any]:
    return json.loads(text)  # type: ignore[no-any-return]


def test_the_relays_hello_is_answered_once_with_our_pid() -> None:
    p = protocol()
    [answer] = p.receive({"#": "hello1", "dam": "?", "pid": "relaypid"})
    assert isinstance(answer, Send) and p.relay_pid == "relaypid"
    assert sent(answer.text)["@"] == "hello1" and sent(answer.text)["pid"] == p.pid and sent(answer.text)["dam"] == "?"
    assert p.receive({"#": "hello1", "dam": "?", "pid": "relaypid"}) == []  # the same id: dropped


def test_our_own_messages_echoed_back_are_dropped() -> None:
    p = protocol()
    _, text = p.put(1, {"s": wire.node("s", [("k", 1, 5)])})
    assert p.receive(sent(text)) == []
    assert p.receive(sent(p.hi())) == []


def test_a_put_is_settled_by_ok_or_err_only() -> None:
    p = protocol()
    p.opened()
    waiter = object()
    msg_id, _ = p.put(7, {"s": wire.node("s", [("k", 1, 5)])}, waiter)
    assert p.in_flight() == {7}
    assert p.receive({"#": "r1", "@": msg_id}) == []  # neither ok nor err: still waiting
    [settled] = p.receive({"#": "r2", "@": msg_id, "err": "no"})
    assert isinstance(settled, Settled) and settled.entry_id == 7 and settled.waiter is waiter
    assert settled.answer.err == "no" and not settled.answer.ok and settled.raw["err"] == "no"
    assert p.in_flight() == set() and p.receive({"#": "r3", "@": msg_id, "ok": 1}) == []


def test_a_get_is_answered_by_its_last_reply_and_its_data_taken_in_first() -> None:
    p = protocol()
    waiter = object()
    msg_id, text = p.ask("room", "topic", waiter)
    assert sent(text)["get"] == {"#": "room", ".": "topic"}
    graph = {"room": wire.node("room", [("topic", "hi", 5)])}
    assert p.receive({"#": "a1", "@": msg_id, "put": graph, "%": 1}) == [Graph(graph)]  # more to come
    assert p.receive({"#": "a2", "@": msg_id, "put": graph}) == [Graph(graph), Answered(waiter)]
    p.forget(msg_id)
    assert p.receive({"#": "a3", "@": msg_id}) == []


def test_an_unanswered_put_expires_only_on_the_connection_it_went_out_on() -> None:
    p = protocol()
    p.opened()
    first, _ = p.put(1, {}, "w1")
    second, _ = p.put(2, {}, "w2")
    p.ask("s", None, "g1")
    assert p.expire(first, connected=True) == 1
    assert p.expire(second, connected=False) is None
    third, _ = p.put(3, {}, "w3")
    lost = p.lost()
    assert lost.puts == ["w3"] and lost.gets == ["g1"]
    p.opened()
    assert p.expire(third, connected=True) is None  # it went out on the connection before


def test_resets_are_acknowledged_once_per_connection() -> None:
    p = protocol()
    p.opened()
    text = p.acknowledge("r1")
    assert text is not None and sent(text)["dam"] == "reset-ack" and sent(text)["reset"] == "r1"
    assert p.acknowledge("r1") is None
    p.receive({"#": "x1", "dam": "reset-ack", "@": sent(text)["#"], "ok": True})
    assert p.acknowledged == {"r1"}
    p.opened()
    refused = p.acknowledge("r1")
    assert refused is not None
    p.receive({"#": "x2", "dam": "reset-ack", "@": sent(refused)["#"], "err": "Unknown reset."})
    assert p.acknowledged == {"r1"}


def test_followed_souls_are_asked_for_again_on_every_connection() -> None:
    p = protocol()
    assert sent(p.follow("a", None))["get"] == {"#": "a"}
    p.follow("a", None)
    p.follow("b", "k")
    assert [sent(t)["get"] for t in p.resubscriptions()] == [{"#": "a"}, {"#": "b", ".": "k"}]
    p.unfollow("a", None)
    p.unfollow("b", "k")
    assert [sent(t)["get"] for t in p.resubscriptions()] == [{"#": "a"}]


def test_a_get_passed_on_by_the_relay_is_for_us_to_answer_unless_told_not_to() -> None:
    [forwarded] = protocol().receive({"#": "f1", "get": {"#": "held", ".": "b"}})
    assert isinstance(forwarded, Forwarded) and forwarded.get.soul == "held" and forwarded.get.key.exact == "b"
    assert protocol(answer_gets=False).receive({"#": "f1", "get": {"#": "held"}}) == []
    assert protocol().receive({"get": {"#": "held"}}) == []  # no id: nobody to answer
    assert protocol().receive({"#": "f2", "get": {"#": 5}}) == []  # not a get GunJS understands


def test_admission_is_the_relays_with_the_client_fence() -> None:
    fence = Fence([FenceRule("r1", "room", 1000)])
    p = PeerProtocol(fence, steady=lambda: 0.0, max_skew_ms=10_000)
    graph = {
        "room": wire.node("room", [("old", 1, 999), ("new", 2, 1001)]),
        "soon": wire.node("soon", [("k", 1, 5000)]),
        "far": wire.node("far", [("k", 1, 50_000)]),
    }
    judged = p.admit(graph, 2000)
    assert judged is not None
    assert [(f.soul, f.key) for f in judged.ready] == [("room", "new")] and [f.soul for f in judged.later] == ["soon"]
    assert len(judged.refused) == 2 and "r1" in judged.refused[0][1]
    assert p.admit({"bad": {"k": 1}}, 2000) is None
    local = p.admit_local([f for f in judged.passed] + judged.fenced, 2000)
    assert len(local.refused) == 1 and [f.soul for f in local.later] == ["soon"]  # our own states: no bound
