"""Bad input on a live relay, one test per kind: the error it gets (or the silence GUN documents),
nothing changed by what was refused (read back), and the good frames around it still served.

Partly covered elsewhere and not repeated here: a parse error, a frame over the size limit and a
binary frame on one connection (test_endpoint.py), a 3 MiB frame closing only its socket
(test_endpoint.py), duplicates counted on fake sockets (test_relay.py), the parser's own refusals
(tests/core/test_wire*.py, test_properties_wire.py). The tests on lone surrogates, the frame
limit in bytes, empty ids and puts answering another peer's message pin bugs the live fuzzer found
(bench/fuzz_live.py), fixed since.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest
import websockets
from fakes import TOKEN

STATE = 1_700_000_000_000  # in the past: applied at once
_ids = itertools.count(1)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))  # ASCII: lone surrogates go out escaped, as JSON.stringify writes them


def node(soul: str, state: float = STATE, **values: Any) -> dict[str, Any]:
    return {soul: {"_": {"#": soul, ">": {k: state for k in values}}, **values}}


class Peer:
    """A raw GUN peer over one websocket: send frames, wait (bounded) for the replies wanted."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.inbox: list[Any] = []
        self.hello: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str) -> "Peer":
        peer = cls(await websockets.connect(url, max_size=None, compression=None, ping_interval=None))
        peer.hello = await peer.next(lambda m: m.get("dam") == "?" and "@" not in m)
        return peer

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else dumps(frame))

    async def pull(self) -> None:
        data = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        self.inbox.extend(data if isinstance(data, list) else [data])

    async def next(self, wanted) -> dict[str, Any]:
        for _ in range(500):  # bounded: frames read while looking for it
            for i, m in enumerate(self.inbox):
                if isinstance(m, dict) and wanted(m):
                    return self.inbox.pop(i)
            await self.pull()
        raise AssertionError("the reply never came")

    async def reply(self, msg_id: Any) -> dict[str, Any]:
        return await self.next(lambda m: "@" in m and m["@"] == msg_id and type(m["@"]) is type(msg_id))

    async def dam_error(self) -> str:
        return (await self.next(lambda m: m.get("dam") == "!"))["err"]

    async def ask(self, frame: Any, msg_id: Any) -> dict[str, Any]:
        await self.send(frame)
        return await self.reply(msg_id)

    async def barrier(self) -> None:
        """Everything sent before is handled: a reply to it would be here now. Puts are merged in
        order on one writer and gets read in order on one reader, so one of each covers both."""
        n = next(_ids)
        await self.send([{"#": f"barrier-put-{n}", "put": node(f"barrier/{n}", k=n)}, {"#": f"barrier-get-{n}", "get": {"#": "barrier/none"}}])
        await self.reply(f"barrier-put-{n}")
        await self.reply(f"barrier-get-{n}")

    def replies_to(self, msg_id: Any) -> list[dict[str, Any]]:
        return [m for m in self.inbox if isinstance(m, dict) and "@" in m and m["@"] == msg_id]

    async def read(self, soul: str, key: str | None = None) -> dict[str, Any] | None:
        msg_id = f"read-{next(_ids)}"
        get: dict[str, Any] = {"#": soul} if key is None else {"#": soul, ".": key}
        reply = await self.ask({"#": msg_id, "get": get}, msg_id)
        assert "err" not in reply, reply
        return reply["put"][soul] if "put" in reply else None

    async def served(self) -> None:
        """A good put is acknowledged and a good get reads it back."""
        n = next(_ids)
        ack = await self.ask({"#": f"good-{n}", "put": node(f"good/{n}", v=f"value {n}")}, f"good-{n}")
        assert ack.get("ok") is True, ack
        assert (await self.read(f"good/{n}"))["v"] == f"value {n}"


@pytest.fixture
async def peers(live_relay):
    opened: list[Peer] = []

    async def connect() -> Peer:
        peer = await Peer.connect(live_relay.ws)
        opened.append(peer)
        return peer

    yield connect
    for peer in opened:
        await peer.close()


# ---------------------------------------------------------------------------------------------
# deep nesting


async def test_deeply_nested_json_is_refused_changes_nothing_and_the_connection_carries_on(peers):
    a = await peers()
    await a.served()
    # past the parser's depth (orjson 1024, then json's recursion limit): a parse error
    for text in ("[" * 20_000, "[" * 2000 + "]" * 2000, '{"a":' * 5000 + "1" + "}" * 5000,
                 '{"#":"deep-1","put":' + '{"a":' * 3000 + "1" + "}" * 3001):
        await a.send(text)
        assert "parse error" in await a.dam_error()
    # within it: an array of arrays is one message that is not an object
    await a.send("[" * 1000 + "]" * 1000)
    assert "must be a JSON object" in await a.dam_error()
    # deep inside a message: refused by id where the relay looks, ignored where it does not
    deep_list = "[" * 900 + "]" * 900
    put = '{"#":"deep-put","put":{"deep/1":{"_":{"#":"deep/1",">":{"ok":1,"k":1}},"ok":"x","k":' + deep_list + "}}}"
    assert "Invalid graph" in (await a.ask(put, "deep-put"))["err"]
    get = '{"#":"deep-get","get":{"#":"deep/1",".":' + '{"*":' * 900 + '"k"' + "}" * 900 + "}}"
    assert "Invalid get" in (await a.ask(get, "deep-get"))["err"]
    await a.send('{"#":' + deep_list + ',"get":{"#":"deep/1"}}')
    assert "Message id" in await a.dam_error()
    await a.send('{"#":"deep-dam","dam":' + deep_list + "}")
    await a.send('{"#":"deep-other","x":' + '{"a":' * 900 + "1" + "}" * 900 + "}")
    await a.barrier()
    assert a.replies_to("deep-dam") == [] and a.replies_to("deep-other") == []
    assert await a.read("deep/1") is None  # the refused put wrote nothing, not even its valid key
    await a.served()


# ---------------------------------------------------------------------------------------------
# huge numbers


async def test_huge_numbers_are_kept_as_javascript_doubles_or_refused_as_states(peers):
    a = await peers()
    await a.served()
    # values beyond 2**53 and beyond 64 bits are the double JavaScript would hold
    text = '{"#":"huge-values","put":{"huge/v":{"_":{"#":"huge/v",">":{"a":1,"b":1,"c":1,"d":1}},' \
           '"a":1000000000000000000000000000000,"b":18446744073709551617,"c":1e308,"d":-1.7976931348623157e308}}}'
    assert (await a.ask(text, "huge-values"))["ok"] is True
    stored = await a.read("huge/v")
    assert stored["a"] == 1e30 and stored["b"] == float(2**64) and stored["c"] == 1e308 and stored["d"] == -1.7976931348623157e308
    # states that far ahead are refused (more than --max-skew-ms in the future), and not written
    for msg_id, state in (("huge-state-1", "1000000000000000000000000000000"), ("huge-state-2", "1e300"),
                          ("huge-state-3", "1.7976931348623157e308")):
        put = '{"#":"%s","put":{"huge/s":{"_":{"#":"huge/s",">":{"k":%s}},"k":"future"}}}' % (msg_id, state)
        assert "ahead of the relay's clock" in (await a.ask(put, msg_id))["err"]
    assert await a.read("huge/s") is None
    # a budget past 2**31 means no budget
    reply = await a.ask('{"#":"huge-budget","get":{"#":"huge/v","%":1000000000000000000000000000000}}', "huge-budget")
    assert set(reply["put"]["huge/v"]) == {"_", "a", "b", "c", "d"}
    await a.served()


async def test_huge_numbers_beyond_the_double_range_are_infinities_refused_and_budgets_read_as_rad_does(peers):
    a = await peers()
    await a.served()
    huge = "1" + "0" * 400  # JSON.parse reads it as Infinity
    for msg_id, node_text in (("beyond-1", '{"_":{"#":"beyond/v",">":{"k":1}},"k":%s}' % huge),
                              ("beyond-2", '{"_":{"#":"beyond/v",">":{"k":1}},"k":-%s}' % huge),
                              ("beyond-3", '{"_":{"#":"beyond/v",">":{"k":%s}},"k":1}' % huge),
                              (7, '{"_":{"#":"beyond/v",">":{"k":-%s}},"k":1}' % huge)):  # a numeric id is answered too
        put = '{"#":%s,"put":{"beyond/ok":{"_":{"#":"beyond/ok",">":{"k":1}},"k":"x"},"beyond/v":%s}}' % (json.dumps(msg_id), node_text)
        reply = await a.ask(put, msg_id)
        assert "Invalid graph" in reply["err"] and "finite" in reply["err"], reply
    assert await a.read("beyond/v") is None and await a.read("beyond/ok") is None
    # a budget of -Infinity (or any below 1) is one item, as RAD reads it; +Infinity or past 2**31 is none
    assert (await a.ask({"#": "beyond-data", "put": node("beyond/d", a=1, b=2, c=3)}, "beyond-data"))["ok"] is True
    for msg_id, budget in (("budget-1", "-1e400"), (8, "-" + huge), ("budget-3", "0")):
        reply = await a.ask('{"#":%s,"get":{"#":"beyond/d","%%":%s}}' % (json.dumps(msg_id), budget), msg_id)
        assert "err" not in reply and len(reply["put"]["beyond/d"]) == 2, reply  # '_' and one key
    for msg_id, budget in (("budget-4", "1e400"), ("budget-5", huge)):
        reply = await a.ask('{"#":"%s","get":{"#":"beyond/d","%%":%s}}' % (msg_id, budget), msg_id)
        assert set(reply["put"]["beyond/d"]) == {"_", "a", "b", "c"}
    await a.served()


# ---------------------------------------------------------------------------------------------
# NaN and Infinity


async def test_nan_and_infinity_states_are_refused_and_nothing_is_written(peers):
    a = await peers()
    await a.served()
    # JSON has no NaN or Infinity: the frame is not JSON
    for literal in ("NaN", "Infinity", "-Infinity"):
        await a.send('{"#":"nan-%s","put":{"nan/1":{"_":{"#":"nan/1",">":{"k":%s}},"k":1}}}' % (literal, literal))
        assert "parse error" in await a.dam_error()
        await a.send('{"#":"nanv-%s","put":{"nan/1":{"_":{"#":"nan/1",">":{"k":1}},"k":%s}}}' % (literal, literal))
        assert "parse error" in await a.dam_error()
    # 1e400 is JSON, and Infinity to JSON.parse: refused as a state or a value, the whole put with it
    for i, (state, value, expected) in enumerate([
        ("1e400", "1", "non-finite state"), ("-1e400", "1", "non-finite state"), ("1E999", "1", "non-finite state"),
        ('"NaN"', "1", "non-numeric state"), ('"Infinity"', "1", "non-numeric state"), ("null", "1", "has no state"),
        ("1", "1e400", "must be finite"), ("1", "-1e999", "must be finite"),
    ]):
        put = '{"#":"inf-%d","put":{"nan/ok":{"_":{"#":"nan/ok",">":{"fine":1}},"fine":"x"},' \
              '"nan/2":{"_":{"#":"nan/2",">":{"k":%s}},"k":%s}}}' % (i, state, value)
        reply = await a.ask(put, f"inf-{i}")
        assert "Invalid graph" in reply["err"] and expected in reply["err"], reply
    assert await a.read("nan/1") is None and await a.read("nan/2") is None
    assert await a.read("nan/ok") is None  # the valid node of each refused put was not written
    await a.served()


# ---------------------------------------------------------------------------------------------
# non-string keys


async def test_non_string_keys_are_parse_errors_or_invalid_and_integer_like_keys_round_trip(peers):
    a = await peers()
    await a.served()
    # JSON keys are strings: anything else is not JSON
    for text in ('{1:"x"}', '{null:1}', "{true:1}", '{[1]:1}', '{"#":"nsk-1","get":{#:"s"}}',
                 '{"#":"nsk-2","put":{nsk:{"_":{"#":"nsk",">":{"k":1}},"k":1}}}',
                 '{"#":"nsk-3","put":{"nsk":{"_":{"#":"nsk",">":{1:1}},"1":1}}}'):
        await a.send(text)
        assert "parse error" in await a.dam_error()
    # souls, keys and ids of the wrong JSON type
    for msg_id, get in (("nsk-4", {"#": 5}), ("nsk-5", {"#": "nsk", ".": 5}), ("nsk-6", {"#": "nsk", ".": {"*": 5}}),
                        ("nsk-7", {"#": {">": []}}), ("nsk-8", {"#": "nsk", "%": "many"})):
        assert "Invalid get" in (await a.ask({"#": msg_id, "get": get}, msg_id))["err"]
    for bad_id in (True, {}, [], {"a": 1}):
        await a.send({"#": bad_id, "put": node("nsk", k="bad id")})
        assert "Message id" in await a.dam_error()
    # a number is an id too, answered as the same number
    assert (await a.ask({"#": 12345, "get": {"#": "nsk"}}, 12345)).get("put") is None
    assert await a.read("nsk") is None
    # integer-like keys (JavaScript orders them first in an object) are keys like any other
    values = {"0": "zero", "1": 1, "10": "ten", "2": None, "-1": "minus", "1.5": True, "01": "leading zero"}
    assert (await a.ask({"#": "nsk-int", "put": node("nsk/int", **values)}, "nsk-int"))["ok"] is True
    stored = await a.read("nsk/int")
    assert {k: v for k, v in stored.items() if k != "_"} == values
    assert stored["_"][">"] == {k: STATE for k in values}
    await a.served()


# ---------------------------------------------------------------------------------------------
# lone surrogates


async def test_lone_surrogates_in_values_and_ids_are_kept_and_answered(peers):
    a, b = await peers(), await peers()
    await a.served()
    await b.ask({"#": "sur-sub", "get": {"#": "sur/v"}}, "sur-sub")
    values = {"high": "\ud800", "low-inside": "a\udfffb", "reversed": "\udc00\ud800", "pair": "\U0001f600"}
    ack = await a.ask({"#": "sur-put-\ud800", "put": node("sur/v", **values)}, "sur-put-\ud800")
    assert ack["ok"] is True and ack["@"] == "sur-put-\ud800"
    stored = await a.read("sur/v")
    assert {k: v for k, v in stored.items() if k != "_"} == values
    push = await b.next(lambda m: "put" in m and "@" not in m)
    assert {k: v for k, v in push["put"]["sur/v"].items() if k != "_"} == values
    # a get with such an id is answered (here: nothing there)
    assert "put" not in await a.ask({"#": "sur-get-\udc00", "get": {"#": "sur/none"}}, "sur-get-\udc00")
    # a soul that cannot be stored is not found, or an error: either way an answer, and the socket carries on
    reply = await a.ask({"#": "sur-soul", "get": {"#": "\ud800"}}, "sur-soul")
    assert "put" not in reply
    await a.served()
    await b.served()


async def test_lone_surrogate_in_a_soul_key_or_link_refuses_the_whole_put(peers):
    # the store holds UTF-8: such a put is refused at validation, before anything of it is written
    a = await peers()
    graph = {**node("sur/partial", a="written anyway?"), **node("\ud800", k="x")}
    key_graph = {"sur/partial-key": {"_": {"#": "sur/partial-key", ">": {"a": STATE, "\udc00": STATE}}, "a": "A", "\udc00": "B"}}
    link_graph = node("sur/link", a="A", l={"#": "x\ud800"})
    replies = [await a.ask({"#": f"sur-partial-{i}", "put": g}, f"sur-partial-{i}") for i, g in enumerate((graph, key_graph, link_graph))]
    assert ["valid Unicode text" in r.get("err", "") for r in replies] == [True, True, True], replies
    for soul in ("sur/partial", "sur/partial-key", "sur/link"):
        assert await a.read(soul) is None
    assert await a.read("\ud800") is None  # a get for such a soul: simply nothing there
    await a.served()


async def test_lone_surrogate_in_a_get_id_is_answered_when_there_is_data(peers):
    a = await peers()
    assert (await a.ask({"#": "sur-data", "put": node("sur/data", k="v")}, "sur-data"))["ok"] is True
    await a.send({"#": "sur-id-\udfff", "get": {"#": "sur/data"}})
    await a.barrier()  # the reply, if any, came before the barrier's get answer
    replies = a.replies_to("sur-id-\udfff")
    assert len(replies) == 1 and replies[0]["put"]["sur/data"]["k"] == "v"


async def test_lone_surrogate_pid_does_not_break_the_peers_api(peers, live_relay):
    a = await peers()
    assert (await a.ask({"#": "sur-pid", "dam": "?", "pid": "pid-\ud800"}, "sur-pid"))["dam"] == "?"
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        response = await http.get("/-/api/peers", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------------
# binary frames and frames that are not UTF-8


async def test_binary_frames_get_an_error_change_nothing_and_keep_their_place(peers):
    a = await peers()
    await a.served()
    put = dumps({"#": "bin-put", "put": node("bin/1", k="from a binary frame")})
    for payload in (put.encode(), b"", b"\x00\x01\xff binary", b"[]"):
        await a.send(payload)
        assert "Binary" in await a.dam_error()
    # in between text frames: each text frame answered, one error for the binary one
    await a.send({"#": "bin-before", "get": {"#": "bin/1"}})
    await a.send(put.encode())
    await a.send({"#": "bin-after", "get": {"#": "bin/1"}})
    assert "put" not in await a.reply("bin-before") and "put" not in await a.reply("bin-after")
    assert "Binary" in await a.dam_error()
    await a.barrier()
    assert a.replies_to("bin-put") == []
    assert await a.read("bin/1") is None
    await a.served()


async def test_invalid_utf8_text_frame_closes_only_that_socket(peers):
    other = await peers()
    await other.served()
    a = await peers()
    # bytes sent as a text frame are not checked by the client; the relay's websocket layer closes with 1007
    await a.ws.send(b'{"#":"utf8","put":{"utf8/1":{"_":{"#":"utf8/1",">":{"k":1}},"k":"\xff"}}}', text=True)
    with pytest.raises(websockets.ConnectionClosed):
        for _ in range(10):
            await a.pull()
    assert a.ws.close_code == 1007
    await other.served()
    again = await peers()  # the same address connects again
    await again.served()
    assert await again.read("utf8/1") is None


# ---------------------------------------------------------------------------------------------
# frame sizes


async def test_100_mb_frame_closes_only_that_socket_and_the_address_reconnects(peers, live_relay):
    a, other = await peers(), await peers()
    await a.served()
    frame = '{"#":"big-put","put":{"big/1":{"_":{"#":"big/1",">":{"k":1}},"k":"' + "x" * 100_000_000 + '"}}}'
    try:
        await asyncio.wait_for(a.ws.send(frame), 60)
    except websockets.ConnectionClosed:
        pass  # the relay may close before the client has written it all
    del frame
    with pytest.raises(websockets.ConnectionClosed):
        for _ in range(10):
            await a.pull()
    assert a.ws.close_code == 1009  # the websocket layer's limit, max(2 x max_frame_bytes, 1 MiB)
    await other.served()  # the other peer never noticed
    again = await peers()  # and the same address connects again
    await again.served()
    assert await again.read("big/1") is None
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        metrics = (await http.get("/metrics")).text
    assert any(line.startswith('gunrelay_refused_total{reason="frame_size"}') and float(line.split()[-1]) >= 1
               for line in metrics.splitlines())


async def test_frame_limit_counts_utf8_bytes_not_characters(peers):
    a = await peers()
    limit = 64 * 1024  # the live relay fixture's max_frame_bytes
    text = json.dumps({"#": "multibyte", "get": {"#": "€" * (limit * 6 // 10)}}, ensure_ascii=False)
    assert len(text) < limit < len(text.encode()) < 2 * limit
    await a.send(text)
    await a.barrier()
    assert a.replies_to("multibyte") == []
    assert "too big" in await a.dam_error()


# ---------------------------------------------------------------------------------------------
# empty and duplicate ids


async def test_empty_ids_are_no_ids_applied_unanswered_and_never_deduplicated(peers):
    # GunJS treats a falsy '#' as absent (it gives the message a fresh id): so does the relay, so
    # one peer's '#': '' cannot make the relay drop every other peer's for the dedup window
    a, b = await peers(), await peers()
    await a.served()
    await a.send({"#": "", "put": node("empty/1", k="first")})
    await a.send({"#": "", "put": node("empty/1", state=STATE + 1, k="second")})  # not a duplicate
    await b.send({"#": "", "put": node("empty/b", k="b")})
    await a.send({"#": None, "put": node("empty/2", k="no id")})
    await a.send({"put": node("empty/3", k="no id either")})
    await a.barrier()
    await b.barrier()
    assert a.replies_to("") == [] and a.replies_to(None) == [] and b.replies_to("") == []
    assert (await a.read("empty/1"))["k"] == "second" and (await b.read("empty/b"))["k"] == "b"
    assert (await a.read("empty/2"))["k"] == "no id" and (await a.read("empty/3"))["k"] == "no id either"
    await a.served()


async def test_empty_souls_and_keys_are_refused_and_the_rest_of_the_put_applies(peers):
    a = await peers()
    await a.served()
    # an empty soul makes the whole put invalid
    reply = await a.ask({"#": "es-1", "put": {**node("es/ok", k="v"), **node("", k="v")}}, "es-1")
    assert "empty soul" in reply["err"]
    assert await a.read("es/ok") is None
    # an empty key is refused on its own (GunJS stores it; the relay refuses it by name), the others apply
    graph = {"es/key": {"_": {"#": "es/key", ">": {"": STATE, "k": STATE}}, "": "empty key", "k": "kept"}}
    assert "Empty soul or key" in (await a.ask({"#": "es-2", "put": graph}, "es-2"))["err"]
    stored = await a.read("es/key")
    assert stored["k"] == "kept" and "" not in stored
    assert "empty soul" in (await a.ask({"#": "es-3", "get": {"#": ""}}, "es-3"))["err"]
    await a.served()


async def test_duplicate_ids_are_dropped_silently_and_change_nothing(peers):
    a, b = await peers(), await peers()
    await a.served()
    # the same id twice in one frame: the first is handled, the second dropped
    await a.send([{"#": "dup-1", "put": node("dup/1", k="first")}, {"#": "dup-1", "put": node("dup/1", state=STATE + 1, k="second")}])
    assert (await a.reply("dup-1"))["ok"] is True
    # sent again later, newer: dropped
    await a.send({"#": "dup-1", "put": node("dup/1", state=STATE + 2, k="third")})
    # another peer using that id: dropped too (ids are global, as in GunJS)
    await b.send({"#": "dup-1", "put": node("dup/1", state=STATE + 3, k="from b")})
    # a get repeated: answered once
    assert "put" in await a.ask({"#": "dup-get", "get": {"#": "dup/1"}}, "dup-get")
    await a.send({"#": "dup-get", "get": {"#": "dup/1"}})
    await a.barrier()
    await b.barrier()
    assert a.replies_to("dup-1") == [] and a.replies_to("dup-get") == [] and b.replies_to("dup-1") == []
    assert (await a.read("dup/1"))["k"] == "first"
    await a.served()
    await b.served()


# ---------------------------------------------------------------------------------------------
# ids that collide with the relay's own, or another peer's


async def test_ids_colliding_with_internal_ones_the_relays_hello_and_reply_ids_are_served_once(peers):
    a = await peers()
    hello_id = a.hello["#"]  # the relay does not remember the ids of its own hello and replies
    assert "put" not in await a.ask({"#": hello_id, "get": {"#": "ids/none"}}, hello_id)
    await a.send({"#": hello_id, "get": {"#": "ids/none"}})  # now it is remembered: a duplicate
    ack = await a.ask({"#": "ids-put", "put": node("ids/1", k="v")}, "ids-put")
    assert (await a.ask({"#": ack["#"], "get": {"#": "ids/1"}}, ack["#"]))["put"]["ids/1"]["k"] == "v"
    await a.barrier()
    assert a.replies_to(hello_id) == []
    # GunJS keeps '<putId><n>' for itself and would drop these; the relay has no such ids and serves them
    for suffix in ("0", "1", "12"):
        assert "put" in await a.ask({"#": "ids-put" + suffix, "get": {"#": "ids/1"}}, "ids-put" + suffix)
    await a.served()


async def test_ids_colliding_with_internal_ones_the_relays_push_ids_are_dropped_and_change_nothing(peers):
    a, b = await peers(), await peers()
    await a.ask({"#": "push-sub", "get": {"#": "push/1"}}, "push-sub")
    assert (await b.ask({"#": "push-w", "put": node("push/1", k="pushed")}, "push-w"))["ok"] is True
    push = await a.next(lambda m: "put" in m and "@" not in m)
    # the relay remembers its pushes' ids (so an echo is dropped): reusing one is a duplicate
    await a.send({"#": push["#"], "put": node("push/1", state=STATE + 1, k="reused push id")})
    await a.send({"#": "push-ack", "@": push["#"], "ok": True})  # an ack for the push ends at the relay
    await a.barrier()
    await b.barrier()
    assert a.replies_to(push["#"]) == [] and b.replies_to(push["#"]) == []
    assert (await a.read("push/1"))["k"] == "pushed"
    await a.served()


async def test_ids_colliding_with_internal_ones_a_reply_naming_another_peers_message_goes_to_that_peer_only(peers):
    a, b, c = await peers(), await peers(), await peers()
    assert (await a.ask({"#": "a-put", "put": node("route/1", k="a's")}, "a-put"))["ok"] is True
    # the relay routes a reply to the connection its id came from, as GunJS does; it changes no data
    forged = {"#": "b-reply", "@": "a-put", "ok": True, "note": "from b"}
    await b.send(forged)
    assert await a.reply("a-put") == forged  # passed on as sent (so a peer that knows an id can answer it)
    for peer in (a, b, c):
        await peer.barrier()
    assert b.replies_to("a-put") == [] and c.replies_to("a-put") == [] and a.replies_to("a-put") == []
    assert (await c.read("route/1"))["k"] == "a's"
    await b.send({"#": "b-own", "@": "b-reply", "ok": True})  # naming its own message: goes nowhere
    await b.barrier()
    assert b.replies_to("b-reply") == []
    await a.served()
    await b.served()


async def test_ids_colliding_with_internal_ones_a_put_answering_another_peers_message_passes_on_no_refused_fields(peers):
    a, b = await peers(), await peers()
    await a.ask({"#": "a-get", "get": {"#": "_whisperz_system"}}, "a-get")
    forged = {"_whisperz_system": {"_": {"#": "_whisperz_system", ">": {"reset": STATE}}, "reset": "forged reset"}}
    reply = await b.ask({"#": "b-answer", "@": "a-get", "put": forged}, "b-answer")
    assert "system space" in reply["err"]
    await a.barrier()
    passed = [m for m in a.replies_to("a-get") if "put" in m]
    assert all("_whisperz_system" not in m["put"] for m in passed), passed


async def test_ids_colliding_with_internal_ones_named_like_javascript_internals_are_plain_ids(peers):
    a = await peers()
    await a.served()
    names = ("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf", "__defineGetter__")
    def values(name: str) -> dict[str, Any]:
        return {name: name} if name == "__proto__" else {name: name, "__proto__": {"#": "constructor"}}

    for name in names:  # as message ids, souls, keys and relation targets
        ack = await a.ask({"#": name, "put": node(name, **values(name))}, name)
        assert ack["ok"] is True
    for name in names:
        stored = await a.read(name)
        assert {k: v for k, v in stored.items() if k != "_"} == values(name)
    await a.served()
