"""``POST /-/api/import`` and ``GET /-/api/export`` on a live relay (admin/api.py): the import's one
path inside the running relay (live fence, SEA, HAM, fan-out to subscribers), streamed both ways;
and the CLI's ``--url`` for ``import jsonl`` and ``export``."""

import asyncio
import json
import subprocess
import sys
import time

import httpx
import websockets
from fakes import TOKEN

from gunrelay.admin.api import NOT_A_LINE, body_lines
from gunrelay.core.graph import Field

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADER = json.dumps({"format": "gunrelay-jsonl", "version": 1, "relay": None, "resets": [], "ttl": {}})


def line(soul: str, key: str, value, state) -> str:
    return json.dumps({"soul": soul, "key": key, "value": value, "state": state})


async def stored(live_relay, soul: str) -> dict:
    from gunrelay.core.lex import Lex
    from gunrelay.storage.base import ReadQuery

    found = await live_relay.app.state.store.read(ReadQuery(soul=soul, key=Lex()))
    return {key: json.loads(value) for key, value, _ in found.get(soul, [])}


async def test_an_import_is_judged_by_the_live_fence_and_ham_and_reaches_subscribers(live_relay):
    now = time.time() * 1000
    old = now - 60_000
    await live_relay.app.state.store.merge([Field("keep", "k", "newer", now)])
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        assert (await http.post("/-/api/resets", json={"scope": "chat"})).status_code == 201
        async with websockets.connect(live_relay.ws) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["dam"] == "?"
            await ws.send(json.dumps({"#": "sub1", "get": {"#": "room"}}))
            await asyncio.wait_for(ws.recv(), 5)  # the (empty) answer: subscribed
            body = "\n".join([
                HEADER,
                line("room", "topic", "imported live", old),
                line("chat/1", "text", "before the reset", old),  # fenced by the live reset
                line("keep", "k", "older", old),  # HAM keeps the stored value
                line("far", "k", "future", now + 3_600_000),  # refused: far ahead of the clock
                '{"soul": "x", "key": "y", "value": [1], "state": 1}',  # malformed
                "not json",
            ]) + "\n"
            r = await http.post("/-/api/import", content=body.encode())
            assert r.status_code == 200, r.text
            report = r.json()
            assert (report["imported"], report["fenced"], report["kept"], report["malformed"], report["malformed_lines"]) == (1, 1, 1, 2, [6, 7]), report
            assert report["refused_by_reason"] == {"future_state": 1}
            pushed = json.loads(await asyncio.wait_for(ws.recv(), 5))
            pushed = pushed if isinstance(pushed, list) else [pushed]
            assert any(m.get("put", {}).get("room", {}).get("topic") == "imported live" for m in pushed), pushed
        audit = (await http.get("/-/api/audit")).json()["entries"]
        assert audit[0]["action"] == "store.import" and json.loads(audit[0]["detail"])["imported"] == 1, audit[0]
    assert await stored(live_relay, "room") == {"topic": "imported live"}
    assert await stored(live_relay, "keep") == {"k": "newer"} and await stored(live_relay, "chat/1") == {}


async def test_refused_imports_change_nothing(live_relay):
    resets = json.dumps({"format": "gunrelay-jsonl", "version": 1, "resets": [], "ttl": {"tmp": 1000}})
    async with httpx.AsyncClient(base_url=live_relay.http) as http:
        body = (HEADER + "\n" + line("a", "b", 1, 1) + "\n").encode()
        assert (await http.post("/-/api/import", content=body)).status_code == 401
        for query, text in (("", resets), ("", "not a header"), ("", ""), ("?dry_run=maybe", HEADER)):
            r = await http.post("/-/api/import" + query, content=(text + "\n" + line("a", "b", 1, 1) + "\n").encode(), headers=AUTH)
            assert r.status_code == 400 and r.json()["error"], (query, text, r.text)
        dry = await http.post("/-/api/import?dry_run=true", content=body, headers=AUTH)
        assert dry.status_code == 200 and dry.json()["imported"] == 1 and dry.json()["dry_run"] is True
    assert await stored(live_relay, "a") == {} and live_relay.app.state.expiry.rules == {}


class Body:
    def __init__(self, chunks):
        self.chunks = chunks

    async def stream(self):
        for chunk in self.chunks:
            yield chunk


async def test_body_lines_are_bounded_and_split_across_chunks():
    chunks = [b'{"a"', b':1}\n' + b"x" * 30, b"y" * 30 + b"\nshort\n\xff\xfe\n", b"tail"]
    got = [text async for text in body_lines(Body(chunks), max_line=40)]
    assert got == ['{"a":1}', NOT_A_LINE, "short", NOT_A_LINE, "tail"]


def gunrelay(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunrelay", *args], capture_output=True, text=True, timeout=120, input=stdin)


async def test_the_cli_imports_and_exports_through_a_running_relay(live_relay, tmp_path):
    old = time.time() * 1000 - 60_000
    dump = tmp_path / "dump.jsonl"
    dump.write_text(HEADER + "\n" + "".join(line(f"n/{i}", "v", i, old) + "\n" for i in range(1200)) + "broken\n")
    url = ("--url", live_relay.http, "--token", TOKEN)
    done = await asyncio.to_thread(gunrelay, "import", "jsonl", str(dump), *url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["imported"], report["malformed_lines"]) == (1200, [1202]) and "1202: malformed" in done.stderr
    assert await stored(live_relay, "n/7") == {"v": 7}

    out = tmp_path / "out.jsonl"
    exported = await asyncio.to_thread(gunrelay, "export", *url, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["relay"] == live_relay.app.state.identity.pub
    fields = {(f["soul"], f["key"]): f["value"] for f in map(json.loads, lines[1:])}
    assert all(fields[(f"n/{i}", "v")] == i for i in range(1200))

    wrong = await asyncio.to_thread(gunrelay, "import", "jsonl", str(dump), "--url", live_relay.http, "--token", "wrong")
    assert wrong.returncode != 0 and "relay refused (401)" in wrong.stderr and "Traceback" not in wrong.stderr
    nowhere = await asyncio.to_thread(gunrelay, "export", "--url", "http://127.0.0.1:9", "--token", TOKEN)
    assert nowhere.returncode != 0 and "cannot reach the relay" in nowhere.stderr and "Traceback" not in nowhere.stderr


async def test_a_live_import_lets_the_relay_serve_its_peers_between_batches(live_relay):
    """A get for a field the import merged early is answered with it while the import still runs."""
    old = time.time() * 1000 - 60_000
    total = 60_000
    body = (HEADER + "\n" + "".join(line(f"n/{i}", "v", i, old) + "\n" for i in range(total))).encode()
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH, timeout=120) as http:
        async with websockets.connect(live_relay.ws) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["dam"] == "?"
            importing = asyncio.create_task(http.post("/-/api/import", content=body))
            served_meanwhile = False
            for i in range(5000):  # bounded: until a get is answered with the imported field, or the import ends
                if importing.done():
                    break
                await ws.send(json.dumps({"#": f"probe{i}", "get": {"#": "n/0"}}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                for message in reply if isinstance(reply, list) else [reply]:
                    if (message.get("put") or {}).get("n/0", {}).get("v") == 0 and not importing.done():
                        served_meanwhile = True
                if served_meanwhile:
                    break
            response = await asyncio.wait_for(importing, 120)
    assert response.status_code == 200 and response.json()["imported"] == total, response.text
    assert served_meanwhile
