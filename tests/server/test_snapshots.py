"""Snapshots on a live relay: consistent while writing, complete or absent, restore recorded and published."""

import asyncio
import itertools
import json
import sqlite3

import httpx
import websockets
from fakes import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
GET_IDS = itertools.count()


def put(msg_id, soul, key, value, state):
    return {"#": msg_id, "put": {soul: {"_": {"#": soul, ">": {key: state}}, key: value}}}


async def acked(ws, *messages) -> None:
    want = {m["#"] for m in messages}
    await ws.send(json.dumps(list(messages)))
    while want:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        for m in frame if isinstance(frame, list) else [frame]:
            if m.get("@") in want:
                assert m.get("ok") is True, m
                want.discard(m["@"])


async def get(ws, soul) -> dict:
    msg_id = f"get-{soul}-{next(GET_IDS)}"  # ids must be fresh: a repeated id is dropped as a duplicate
    await ws.send(json.dumps({"#": msg_id, "get": {"#": soul}}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        for m in frame if isinstance(frame, list) else [frame]:
            if m.get("@") == msg_id:
                return m.get("put", {}).get(soul, {})


async def test_snapshot_reset_restore(live_relay):
    state = live_relay.app.state.relay.clock_ms() - 10_000
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http, websockets.connect(live_relay.ws) as ws:
        await acked(ws, put("a", "room", "before", "kept by the snapshot", state))
        snap = (await http.post("/-/api/snapshots", json={"label": "nightly"})).json()
        assert snap["name"].endswith("-nightly") and snap["fields"] == 1
        await acked(ws, put("b", "room", "after", "written after the snapshot", state + 1))
        reset = await http.post("/-/api/resets", json={"scope": "*", "snapshot": True})
        assert reset.status_code == 201 and reset.json()["snapshot"]["fields"] == 2
        for _ in range(100):
            if (await http.get("/-/api/resets")).json()["resets"][0]["purge"]["done"]:
                break
            await asyncio.sleep(0.02)
        assert await get(ws, "room") == {}

        restored = await http.post(f"/-/api/snapshots/{snap['name']}/restore", json={"message": "back to last night"})
        assert restored.status_code == 200, restored.text
        body = restored.json()
        assert body["record"]["kind"] == "restore" and body["restored_fields"] == 1
        assert body["resets_undone"] == [reset.json()["record"]["reset_id"]]
        node = await get(ws, "room")
        assert node["before"] == "kept by the snapshot" and "after" not in node
        # a peer still holding what was written after the snapshot cannot push it back
        await ws.send(json.dumps(put("b-again", "room", "after", "written after the snapshot", state + 1)))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            replies = [m for m in (frame if isinstance(frame, list) else [frame]) if m.get("@") == "b-again"]
            if replies:
                assert body["record"]["reset_id"] in replies[0]["err"]
                break
        history = (await http.get("/-/api/resets")).json()["resets"]
        assert [h["record"]["kind"] for h in history] == ["reset", "restore"]
        assert history[0]["superseded_by"] == body["record"]["reset_id"]
        names = [s["name"] for s in (await http.get("/-/api/snapshots")).json()["snapshots"]]
        assert snap["name"] in names and any(n.endswith("before-reset") for n in names)


async def test_snapshots_are_whole_sqlite_files_and_names_are_checked(live_relay, tmp_path):
    state = live_relay.app.state.relay.clock_ms() - 10_000
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http, websockets.connect(live_relay.ws) as ws:
        await acked(ws, *[put(f"p{i}", f"s/{i}", "k", i, state) for i in range(200)])
        writes = asyncio.create_task(acked(ws, *[put(f"q{i}", f"t/{i}", "k", i, state) for i in range(400)]))  # one frame, under the 64 KiB test limit
        snap = (await http.post("/-/api/snapshots", json={})).json()
        await writes
        folder = tmp_path / "data" / "snapshots"
        db = sqlite3.connect(folder / f"{snap['name']}.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM fields").fetchone()[0] == snap["fields"] >= 200
        db.close()
        assert not list(folder.glob(".*partial"))
        for bad in ("..%2F..%2Fgunrelay.sqlite3", "nope", "20260101T000000Z-../x"):
            r = await http.delete(f"/-/api/snapshots/{bad}")
            assert r.status_code in (400, 404), bad
        assert (await http.post("/-/api/snapshots", json={"label": "../escape"})).status_code == 400
        assert (await http.post("/-/api/snapshots/20260101T000000Z/restore", json={})).status_code == 404
        assert (await http.delete(f"/-/api/snapshots/{snap['name']}")).status_code == 200
        assert (await http.get("/-/api/snapshots")).json()["snapshots"] == []
