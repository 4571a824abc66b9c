"""The engine's mesh rules, synchronously: relay links get every write, gets go on to them, their
answers come back to the asker, and a link to ourselves or a second link to one relay is dropped."""

import json

import pytest

from gunrelay.core.engine import PEER_WAIT_S, AwaitPeers, Drop, Merge, Read, Send
from gunrelay.core.link import Link
from gunrelay.core.reads import ReadPage

from test_engine import NOW, T0, frame, link, make_engine, put, sends, without_ids


def relay_link(engine, name, pid=None, dialled=True):
    """A relay link: dialled by this relay, or one that greeted with "mesh"."""
    new = Link(name, "127.0.0.1", dialled=dialled)
    engine.connect(new, NOW)
    engine.take()
    if not dialled:
        engine.receive(new, frame({"#": f"hi-{name}", "dam": "?", "pid": pid or f"pid-{name}", "mesh": 1}), NOW)
        engine.take()
    elif pid is not None:
        engine.receive(new, frame({"#": f"hi-{name}", "dam": "?", "pid": pid}), NOW)
        engine.take()
    return new


def _merge_all(engine, effects, source_accepts=True):
    for effect in effects:
        if type(effect) is Merge:
            engine.merged(effect.job, effect.fields if source_accepts else [], NOW)
    return engine.take()


def test_a_dialled_link_is_greeted_as_a_relay_of_the_mesh():
    engine = make_engine()
    peer = Link("peer", "127.0.0.1", dialled=True)
    engine.connect(peer, NOW)
    [(to, hello)] = sends(engine.take())
    assert to == "peer" and hello["dam"] == "?" and hello["pid"] == "relaypid" and hello["mesh"] == 1
    assert engine.relay_links == [peer]


def test_a_link_that_greets_with_mesh_becomes_a_relay_link():
    engine = make_engine()
    inbound = relay_link(engine, "in", dialled=False)
    assert inbound.relay and not inbound.dialled and engine.relay_links == [inbound]
    plain = link(engine, "client")
    engine.receive(plain, frame({"#": "h", "dam": "?", "pid": "somebody"}), NOW)
    assert not plain.relay and engine.relay_links == [inbound]


@pytest.mark.parametrize("source", ["client", "r1"])
def test_a_write_goes_on_to_every_relay_link_but_its_source_at_once_with_its_id(source):
    engine = make_engine()
    client, r1, r2 = link(engine, "client"), relay_link(engine, "r1"), relay_link(engine, "r2")
    engine.receive(r2, frame({"get": {"#": "s"}}), NOW)  # a relay link that also subscribed: still one copy
    engine.take()  # (the get went on to r1)
    writer = {"client": client, "r1": r1}[source]
    engine.receive(writer, frame(put("p", "s", k="v")), NOW)
    effects = engine.take()
    forwarded = sends(effects)  # before the store has it: the Merge is still to be done
    assert [type(e).__name__ for e in effects if type(e) is not Send] == ["Merge"]
    assert sorted(to for to, _ in forwarded) == sorted({"r1", "r2"} - {source})
    for _, message in forwarded:
        assert message == {"#": "p", "put": {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}}}
    after = _merge_all(engine, effects)
    assert [(to, "ok" in m) for to, m in sends(after)] == [(source, True)]  # only the ack: nothing pushed twice


def test_only_the_fields_that_passed_go_on():
    from gunrelay.core.fence import Fence, FenceRule, Protected

    engine = make_engine(Fence([FenceRule("r1", "old", T0 - 1)], protected=Protected(("~relaypub",))))
    client, r1 = link(engine, "client"), relay_link(engine, "r1")
    message = {"#": "p", "put": {
        "old": {"_": {"#": "old", ">": {"k": T0 - 5}}, "k": "stale"},
        "new": {"_": {"#": "new", ">": {"k": T0}}, "k": "fresh"},
    }}
    engine.receive(client, frame(message), NOW)
    [(to, forwarded)] = sends(engine.take())
    assert to == "r1" and list(forwarded["put"]) == ["new"]


def test_a_write_that_comes_back_around_a_ring_is_dropped():
    engine = make_engine()
    client, r1, r2 = link(engine, "client"), relay_link(engine, "r1"), relay_link(engine, "r2")
    engine.receive(client, frame(put("p", "s", k="v")), NOW)
    _merge_all(engine, engine.take())
    engine.receive(r2, frame(put("p", "s", k="v")), NOW)  # the same write, back from the ring's far side
    assert engine.take() == []


def test_the_relays_own_writes_go_to_every_relay_link():
    engine = make_engine()
    r1 = relay_link(engine, "r1")
    from gunrelay.core.graph import Field

    engine.published([Field("~relaypub/reset", "reset_id", "r-1", T0)], NOW)
    [(to, message)] = sends(engine.take())
    assert to == "r1" and message["put"]["~relaypub/reset"]["reset_id"] == "r-1"


def test_a_get_goes_on_to_every_other_relay_link_with_its_own_id():
    engine = make_engine()
    client, r1, r2 = link(engine, "client"), relay_link(engine, "r1"), relay_link(engine, "r2")
    engine.receive(r1, frame({"#": "g", "get": {"#": "s", ".": "k"}}), NOW)
    effects = engine.take()
    assert sends(effects) == [("r2", {"#": "g", "get": {"#": "s", ".": "k"}})]
    assert sorted(type(e).__name__ for e in effects if type(e) is not Send) == ["AwaitPeers", "Read"]
    assert [e.wait_s for e in effects if type(e) is AwaitPeers] == [PEER_WAIT_S]
    engine.receive(client, frame({"#": "g2", "get": {"#": "t"}}), NOW)
    assert sorted(to for to, _ in sends(engine.take())) == ["r1", "r2"]


def test_without_relay_links_a_get_is_only_read():
    engine = make_engine()
    client = link(engine, "client")
    engine.receive(client, frame({"#": "g", "get": {"#": "s"}}), NOW)
    assert [type(e) for e in engine.take()] == [Read]


def _ask(engine, asker, soul="s"):
    engine.receive(asker, frame({"#": "g", "get": {"#": soul}}), NOW)
    [read] = [e for e in engine.take() if type(e) is Read]
    return read.job


def test_not_found_waits_until_every_relay_asked_said_so():
    engine = make_engine()
    client, r1, r2 = link(engine, "client"), relay_link(engine, "r1"), relay_link(engine, "r2")
    job = _ask(engine, client)
    engine.page_read(job, ReadPage({}, None, 0, 0), NOW)
    assert sends(engine.take()) == []  # the store had nothing: wait for the mesh
    engine.receive(r1, frame({"#": "n1", "@": "g"}), NOW)
    assert sends(engine.take()) == []  # r1's "not found" ends here
    engine.receive(r2, frame({"#": "n2", "@": "g"}), NOW)
    assert without_ids(sends(engine.take())) == [("client", {"@": "g"})]


def test_a_relays_data_answer_is_admitted_stored_and_passed_on_and_no_not_found_follows():
    engine = make_engine()
    client, r1 = link(engine, "client"), relay_link(engine, "r1")
    job = _ask(engine, client)
    answer = {"#": "a1", "@": "g", "put": {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}}}
    engine.receive(r1, frame(answer), NOW)
    effects = engine.take()
    assert ("client", answer) in sends(effects)
    [merge] = [e for e in effects if type(e) is Merge]
    assert [(f.soul, f.key, f.value) for f in merge.fields] == [("s", "k", "v")]
    engine.page_read(job, ReadPage({}, None, 0, 0), NOW)
    assert sends(engine.take()) == []


def test_relays_that_never_answer_are_waited_for_a_bounded_time():
    engine = make_engine()
    client, _ = link(engine, "client"), relay_link(engine, "r1")
    job = _ask(engine, client)
    engine.page_read(job, ReadPage({}, None, 0, 0), NOW)
    assert sends(engine.take()) == []
    engine.peers_silent(job)
    assert without_ids(sends(engine.take())) == [("client", {"@": "g"})]
    engine.peers_silent(job)  # a second timer for the same get (or a late one) sends nothing more
    assert engine.take() == []


def test_a_relay_link_that_goes_counts_as_having_answered():
    engine = make_engine()
    client, r1 = link(engine, "client"), relay_link(engine, "r1")
    job = _ask(engine, client)
    engine.page_read(job, ReadPage({}, None, 0, 0), NOW)
    engine.take()
    r1.closed = True
    engine.disconnect(r1)
    assert without_ids(sends(engine.take())) == [("client", {"@": "g"})]
    assert engine.relay_links == []


def test_stored_data_is_answered_at_once_and_peers_add_to_it():
    engine = make_engine()
    client, r1 = link(engine, "client"), relay_link(engine, "r1")
    job = _ask(engine, client)
    engine.page_read(job, ReadPage({"s": [("k", '"v"', T0)]}, None, 1, 1), NOW)
    [(to, reply)] = sends(engine.take())
    assert to == "client" and reply["put"]["s"]["k"] == "v"
    engine.receive(r1, frame({"#": "n1", "@": "g"}), NOW)
    assert sends(engine.take()) == []


def test_a_link_to_this_relay_itself_is_dropped():
    engine = make_engine()
    loop = Link("loop", "127.0.0.1", dialled=True)
    engine.connect(loop, NOW)
    engine.take()
    engine.receive(loop, frame({"#": "h", "dam": "?", "pid": "relaypid"}), NOW)
    [drop] = [e for e in engine.take() if type(e) is Drop]
    assert drop.link is loop and "itself" in drop.reason


@pytest.mark.parametrize(
    "our_pid, their_pid, kept",
    [
        ("aaa", "zzz", "dialled"),  # our pid sorts first: the link we dialled stays
        ("zzz", "aaa", "inbound"),  # theirs does: the link they dialled stays
    ],
)
def test_two_relays_that_dial_each_other_keep_the_same_one_link(our_pid, their_pid, kept):
    engine = make_engine()
    engine.pid = our_pid
    dialled = relay_link(engine, "dialled", pid=their_pid)
    inbound = Link("inbound", "127.0.0.1")
    engine.connect(inbound, NOW)
    engine.take()
    engine.receive(inbound, frame({"#": "h2", "dam": "?", "pid": their_pid, "mesh": 1}), NOW)
    [drop] = [e for e in engine.take() if type(e) is Drop]
    assert drop.link is {"dialled": inbound, "inbound": dialled}[kept]
    assert "second link" in drop.reason


def test_a_second_dialled_link_to_one_relay_is_dropped():
    engine = make_engine()
    relay_link(engine, "first", pid="other")
    second = Link("second", "127.0.0.1", dialled=True)
    engine.connect(second, NOW)
    engine.take()
    engine.receive(second, frame({"#": "h3", "dam": "?", "pid": "other"}), NOW)
    [drop] = [e for e in engine.take() if type(e) is Drop]
    assert drop.link is second


def test_a_relay_links_hello_is_answered_like_any_peers():
    engine = make_engine()
    inbound = Link("inbound", "127.0.0.1")
    engine.connect(inbound, NOW)
    engine.take()
    engine.receive(inbound, frame({"#": "h", "dam": "?", "pid": "them", "mesh": 1}), NOW)
    [(to, answer)] = sends(engine.take())
    assert to == "inbound" and answer["@"] == "h" and answer["pid"] == "relaypid"
    assert json.loads(json.dumps(answer))["dam"] == "?"


def test_a_dialled_link_carries_a_whole_relays_writes_without_the_client_rates():
    engine = make_engine(max_messages_per_s=2, message_burst=2, max_fields_per_s=2, field_burst=2)
    dialled, inbound = relay_link(engine, "dialled"), relay_link(engine, "inbound", dialled=False)
    many = [put(f"p{n}", f"s{n}", k="v") for n in range(5)]
    engine.receive(dialled, frame(*many), NOW)
    assert sum(1 for e in engine.take() if type(e) is Merge) == 5
    engine.receive(inbound, frame(*[put(f"q{n}", f"t{n}", k="v") for n in range(5)]), NOW)
    effects = engine.take()
    assert not any(type(e) is Merge for e in effects)
    assert all("Too many messages" in m["err"] for _, m in sends(effects))


def test_a_relay_link_is_announced_once_its_greeting_names_the_relay():
    from gunrelay.core.engine import RelayLinked

    engine = make_engine()
    dialled = Link("dialled", "127.0.0.1", dialled=True)
    engine.connect(dialled, NOW)
    assert [e for e in engine.take() if type(e) is RelayLinked] == []  # a GunJS relay never names itself
    engine.receive(dialled, frame({"#": "a", "dam": "?", "pid": "peer", "@": "x", "mesh": 1, "relay": "pubP"}), NOW)
    assert [e.link for e in engine.take() if type(e) is RelayLinked] == [dialled] and dialled.relay_pub == "pubP"
    inbound = link(engine, "inbound")
    engine.receive(inbound, frame({"#": "h", "dam": "?", "pid": "them", "mesh": 1, "relay": "pubT"}), NOW)
    effects = engine.take()
    assert [type(e).__name__ for e in effects] == ["Send", "RelayLinked"]  # our answer first: then it knows us when we ask
    assert [e.link for e in effects if type(e) is RelayLinked] == [inbound]
    [(to, answer)] = sends(effects)  # our answer names us too
    assert to == "inbound" and answer["@"] == "h" and answer["mesh"] == 1 and answer["relay"] == "relaypub"
    engine.receive(inbound, frame({"#": "h2", "dam": "?", "pid": "them", "mesh": 1, "relay": "other"}), NOW)
    assert [e for e in engine.take() if type(e) is RelayLinked] == [] and inbound.relay_pub == "pubT"
    client = link(engine, "client")
    engine.receive(client, frame({"#": "h3", "dam": "?", "pid": "browser"}), NOW)
    assert [e for e in engine.take() if type(e) is RelayLinked] == []


def test_introduce_sends_stored_fields_to_one_link_under_a_fresh_id():
    from gunrelay.core.graph import Field

    engine = make_engine()
    r1, r2 = relay_link(engine, "r1"), relay_link(engine, "r2")
    engine.introduce(r1, [Field("~a/resets/x", "scope", "room", T0)], NOW)
    [(to, message)] = sends(engine.take())
    assert to == "r1" and message["put"] == {"~a/resets/x": {"_": {"#": "~a/resets/x", ">": {"scope": T0}}, "scope": "room"}}
    engine.receive(r2, frame(message), NOW)  # our own id, echoed by a peer: dropped
    assert engine.take() == []


# -- catch-up: change streams ------------------------------------------------------------------


def named_relay(engine, name, pub):
    """An inbound relay link that greeted with its pub."""
    new = link(engine, name)
    engine.receive(new, frame({"#": f"hi-{name}", "dam": "?", "pid": f"pid-{name}", "mesh": 1, "relay": pub}), NOW)
    engine.take()
    return new


def test_a_named_relay_may_read_the_change_stream_one_page_at_a_time():
    from gunrelay.core.engine import ReadChanges

    engine = make_engine()
    peer = named_relay(engine, "peer", "pubP")
    engine.receive(peer, frame({"#": "c1", "dam": "changes", "since": 7}), NOW)
    [read] = engine.take()
    assert type(read) is ReadChanges and (read.link, read.msg_id, read.since) == (peer, "c1", 7)
    engine.changes_read(read, [("s", "k", '"v"', T0), ("t", "j", "1", T0)], 9, False, NOW)
    [(to, page)] = sends(engine.take())
    assert to == "peer" and page["@"] == "c1" and page["changes"] == {"cursor": 9, "done": False}
    assert page["put"] == {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}, "t": {"_": {"#": "t", ">": {"j": T0}}, "j": 1}}


def test_the_stream_never_serves_a_fenced_field_and_an_empty_page_has_no_put():
    from gunrelay.core.fence import Fence, FenceRule, Protected

    engine = make_engine(Fence([FenceRule("r", "old", T0 - 1)], protected=Protected(("~relaypub",))))
    peer = named_relay(engine, "peer", "pubP")
    engine.receive(peer, frame({"#": "c1", "dam": "changes", "since": 0}), NOW)
    [read] = engine.take()
    engine.changes_read(read, [("old", "k", '"stale"', T0 - 5)], 1, True, NOW)
    [(_, page)] = sends(engine.take())
    assert "put" not in page and page["changes"] == {"cursor": 1, "done": True}


@pytest.mark.parametrize(
    "who, since, problem",
    [
        ("client", 0, "Only a relay of the mesh"),  # a browser may not dump the stream
        ("peer", -1, "'since' must be"),
        ("peer", "3", "'since' must be"),
    ],
)
def test_a_bad_stream_request_is_answered_with_an_error(who, since, problem):
    engine = make_engine()
    asker = {"client": link(engine, "client"), "peer": named_relay(engine, "peer", "pubP")}[who]
    engine.receive(asker, frame({"#": "c1", "dam": "changes", "since": since}), NOW)
    [(to, reply)] = sends(engine.take())
    assert reply["@"] == "c1" and problem in reply["err"]


def test_a_page_we_asked_for_is_admitted_then_caught_up_and_what_was_new_goes_on():
    from gunrelay.core.engine import CaughtUp

    engine = make_engine(max_fields_per_s=1, field_burst=1)  # a page is not held to the field rate
    source, other = named_relay(engine, "source", "pubS"), relay_link(engine, "other")
    engine.ask_changes(source, 4, NOW)
    [(to, request)] = sends(engine.take())
    assert to == "source" and request["dam"] == "changes" and request["since"] == 4
    page = {"#": "p1", "@": request["#"], "changes": {"cursor": 6, "done": True},
            "put": {"s": {"_": {"#": "s", ">": {"a": T0, "b": T0}}, "a": 1, "b": 2}}}
    engine.receive(source, frame(page), NOW)
    effects = engine.take()
    assert sends(effects) == []  # nothing goes on before it is durable
    [merge] = [e for e in effects if type(e) is Merge]
    engine.merged(merge.job, [f for f in merge.fields if f.key == "a"], NOW)  # only 'a' was new here
    after = engine.take()
    [caught] = [e for e in after if type(e) is CaughtUp]
    assert (caught.link, caught.cursor, caught.done) == (source, 6, True)
    [(to, forwarded)] = [(to, m) for to, m in sends(after) if to == "other"]
    assert forwarded["put"] == {"s": {"_": {"#": "s", ">": {"a": T0}}, "a": 1}}


def test_a_page_the_store_failed_to_write_is_not_caught_up():
    from gunrelay.core.engine import CaughtUp

    engine = make_engine()
    source = named_relay(engine, "source", "pubS")
    engine.ask_changes(source, 0, NOW)
    [(_, request)] = sends(engine.take())
    engine.receive(source, frame({"#": "p1", "@": request["#"], "changes": {"cursor": 3, "done": True},
                                  "put": {"s": {"_": {"#": "s", ">": {"a": T0}}, "a": 1}}}), NOW)
    [merge] = [e for e in engine.take() if type(e) is Merge]
    engine.merged(merge.job, None, NOW, "disk full")
    assert [e for e in engine.take() if type(e) is CaughtUp] == []


def test_an_empty_page_is_caught_up_at_once_and_a_page_nobody_asked_for_is_a_plain_put():
    from gunrelay.core.engine import CaughtUp

    engine = make_engine()
    source = named_relay(engine, "source", "pubS")
    engine.ask_changes(source, 5, NOW)
    [(_, request)] = sends(engine.take())
    engine.receive(source, frame({"#": "p1", "@": request["#"], "changes": {"cursor": 5, "done": True}}), NOW)
    [caught] = engine.take()
    assert type(caught) is CaughtUp and (caught.cursor, caught.done) == (5, True)
    engine.receive(source, frame({"#": "p2", "@": "not-ours", "changes": {"cursor": 99, "done": True},
                                  "put": {"s": {"_": {"#": "s", ">": {"a": T0}}, "a": 1}}}), NOW)
    effects = engine.take()
    merges = [e for e in effects if type(e) is Merge]
    engine.merged(merges[0].job, merges[0].fields, NOW)
    assert [e for e in engine.take() if type(e) is CaughtUp] == []


def test_what_another_process_of_the_fleet_stored_goes_to_subscribers_and_inbound_relays_and_not_when_fenced():
    from gunrelay.core.fence import Fence, FenceRule, Protected
    from gunrelay.core.graph import Field

    engine = make_engine(Fence([FenceRule("r1", "old", T0 - 1)], protected=Protected(("~relaypub",))))
    watcher = link(engine, "watcher")
    dialled = relay_link(engine, "dialled")
    inbound = relay_link(engine, "inbound", dialled=False)
    engine.receive(watcher, frame({"get": {"#": "s"}}, {"get": {"#": "old"}}), NOW)
    engine.take()
    engine.shared([Field("s", "k", "v", T0), Field("old", "k", "stale", T0 - 5), Field("old", "n", "new", T0)], NOW)
    pushes = sends(engine.take())
    assert [(to, m["put"]) for to, m in pushes if to == "watcher"] == [
        ("watcher", {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}}),
        ("watcher", {"old": {"_": {"#": "old", ">": {"n": T0}}, "n": "new"}}),
    ]
    # a relay that dialled in to this process hears it from this process only; every process
    # dials the --peer relays itself, and the writing process sent it on to them
    assert [(to, m["put"]) for to, m in pushes if to != "watcher"] == [
        ("inbound", {"s": {"_": {"#": "s", ">": {"k": T0}}, "k": "v"}, "old": {"_": {"#": "old", ">": {"n": T0}}, "n": "new"}}),
    ]
    assert dialled.id not in {to for to, _ in pushes}
