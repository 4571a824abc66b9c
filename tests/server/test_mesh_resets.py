"""Resets across the mesh without a network: relay A issues, relay B (trusting A) is handed A's
signed record fields as a relay link would hand them, and obeys; A hears B's acknowledgement.
Fake sockets, injected clock, memory stores."""

import json

import pytest
from fakes import Socket, put, settle
from test_control import T0, World, make_identity

from gunrelay.core import sea
from gunrelay.core.reset import index_soul, mesh_ack_soul, mesh_ack_value
from gunrelay.server.mesh_resets import MeshResets
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.memory import MemoryStore


async def make_world(trusted=()) -> World:
    from gunrelay.server.expiry import Expiry

    world = World(MemoryStore())
    await world.control.start()
    world.expiry = Expiry(world.control, world.store, sweep_s=3600)
    world.mesh = MeshResets(world.relay, world.control, world.identity, tuple(trusted), world.expiry)
    world.mesh.attach()
    return world


async def record_fields(world: World, reset_id: str) -> dict:
    """A's record soul for ``reset_id`` as a put's graph (the fields as stored, signed)."""
    soul = f"{index_soul(world.identity.pub)}/{reset_id}"
    found = await world.store.read(ReadQuery(soul=soul))
    rows = found[soul]
    node = {"_": {"#": soul, ">": {k: s for k, _, s in rows}}}
    node.update({k: json.loads(v) for k, v, _ in rows})
    return {soul: node}


async def finish_all(*worlds) -> None:
    """Until the store's merges, the watch's reads, obeying, purges and publications are all done
    (bounded: about 2 s)."""
    import asyncio

    for _ in range(200):
        await asyncio.sleep(0.01)
        if all(not w.control._tasks and not w.mesh._tasks and not w.relay._pending_writes for w in worlds):
            await asyncio.sleep(0.02)  # one more round: a finished merge may have started a read
            if all(not w.control._tasks and not w.mesh._tasks and not w.relay._pending_writes for w in worlds):
                return
    raise AssertionError("the worlds did not settle")


@pytest.fixture
async def pair():
    a = await make_world()
    b = await make_world(trusted=(a.identity.pub,))
    b.store_fill = Socket(b.relay)
    return a, b


async def test_a_trusted_relays_record_is_obeyed_with_the_same_watermark_and_acknowledged(pair):
    a, b = pair
    b.store_fill.send(put("old", "room/1", state=T0 - 10, msg="stale"))
    await settle()
    issued = await a.control.issue("room", reason="spam")
    await a.finish()
    reset_id = issued["record"]["reset_id"]
    link = Socket(b.relay)
    link.send({"#": "rec", "put": await record_fields(a, reset_id)})
    await settle()
    await finish_all(b)
    held = b.control.resets[reset_id]
    assert held.record.watermark == issued["record"]["W"] and held.record.issuer == a.identity.pub
    assert held.purge_done and b.control.describe(reset_id)["purge"]["fields_removed"] == 1
    assert (await b.store.read(ReadQuery(soul="room/1"))) == {}
    assert b.control.fence.blocks("room/2", T0 - 1, T0) is not None  # the fence holds for new stale writes too
    # B published the record in its own space for its own clients, and acknowledged in its ack space
    assert f"{index_soul(b.identity.pub)}/{reset_id}" in await b.store.read(ReadQuery(soul=f"{index_soul(b.identity.pub)}/{reset_id}"))
    acks = await b.store.read(ReadQuery(soul=mesh_ack_soul(b.identity.pub)))
    [(key, value, state)] = acks[mesh_ack_soul(b.identity.pub)]
    assert key == reset_id and json.loads(sea.signed_payload(json.loads(value))) == {"issuer": a.identity.pub, "fence": True, "purged": True}
    # the acknowledgement, carried back to A, is listed per relay
    back = Socket(a.relay)
    back.send({"#": "ack", "put": {mesh_ack_soul(b.identity.pub): {"_": {"#": mesh_ack_soul(b.identity.pub), ">": {key: state}}, key: json.loads(value)}}})
    await settle()
    await finish_all(a)
    [relay] = a.control.describe(reset_id)["relays"]
    assert relay == {"pub": b.identity.pub, "fence_installed": True, "purge_done": True, "at": state}


async def test_an_untrusted_relays_record_is_stored_as_data_and_fences_nothing():
    a = await make_world()
    b = await make_world(trusted=(make_identity().pub,))  # trusts somebody else
    issued = await a.control.issue("room")
    await a.finish()
    Socket(b.relay).send({"#": "rec", "put": await record_fields(a, issued["record"]["reset_id"])})
    await settle()
    await finish_all(b)
    assert issued["record"]["reset_id"] not in b.control.resets
    assert b.control.fence.blocks("room/1", T0 - 1, T0) is None


async def test_a_record_already_held_or_an_older_epoch_changes_nothing(pair):
    a, b = pair
    first = await a.control.issue("room")
    await a.finish()
    a.now += 1000
    b.now = a.now  # the two relays' clocks agree
    second = await a.control.issue("room")
    await a.finish()
    link = Socket(b.relay)
    link.send({"#": "r2", "put": await record_fields(a, second["record"]["reset_id"])})
    await settle()
    await finish_all(b)
    link.send({"#": "r1", "put": await record_fields(a, first["record"]["reset_id"])})  # epoch 1 after epoch 2
    link.send({"#": "r2b", "put": await record_fields(a, second["record"]["reset_id"])})  # again (another id)
    await settle()
    await finish_all(b)
    assert set(b.control.resets) == {second["record"]["reset_id"]}


async def test_a_forged_acknowledgement_is_not_listed(pair):
    a, b = pair
    issued = await a.control.issue("room")
    await a.finish()
    reset_id = issued["record"]["reset_id"]
    mallory = make_identity()
    soul = mesh_ack_soul(b.identity.pub)  # in B's space, signed by someone else
    forged = sea.sign_field(mallory.private_key, soul, reset_id, mesh_ack_value(a.identity.pub, True), T0)
    Socket(a.relay).send({"#": "f", "put": {soul: {"_": {"#": soul, ">": {reset_id: T0}}, reset_id: forged}}})
    await settle()
    await finish_all(a)
    assert a.control.describe(reset_id)["relays"] == []


async def test_a_new_relay_link_is_sent_the_records_held_first(pair):
    a, b = pair
    issued = await a.control.issue("room")
    await a.finish()
    reset_id = issued["record"]["reset_id"]
    link = Socket(b.relay)
    link.send({"#": "rec", "put": await record_fields(a, reset_id)})
    await settle()
    await finish_all(b)
    newcomer = Socket(b.relay)
    newcomer.send({"#": "hi", "dam": "?", "pid": "some-relay", "mesh": 1, "relay": make_identity().pub})  # a relay of the mesh greets
    await settle()
    await finish_all(b)
    sent = [m for m in newcomer.messages() if "put" in m]
    souls = {soul for m in sent for soul in m["put"]}
    assert f"{index_soul(a.identity.pub)}/{reset_id}" in souls  # the original, signed by A
    assert f"{index_soul(b.identity.pub)}/{reset_id}" in souls  # and B's own publication of it
    plain = Socket(b.relay)
    plain.send({"#": "hi2", "dam": "?", "pid": "a-browser"})
    await settle()
    await finish_all(b)
    assert [m for m in plain.messages() if "put" in m] == []


async def test_a_relay_does_not_obey_a_reset_of_its_own_space():
    a = await make_world()
    b = await make_world(trusted=(a.identity.pub,))
    record_soul = f"{index_soul(a.identity.pub)}/1-own"
    values = {"reset_id": "1-own", "scope": b.identity.space, "epoch": 1, "W": T0}
    node = {"_": {"#": record_soul, ">": {k: T0 for k in values}}}
    node.update({k: sea.sign_field(a.identity.private_key, record_soul, k, v, T0) for k, v in values.items()})
    Socket(b.relay).send({"#": "own", "put": {record_soul: node}})
    await settle()
    await finish_all(b)
    assert "1-own" not in b.control.resets


async def test_a_relays_acknowledgement_survives_a_restart_of_the_issuer(tmp_path):
    from gunrelay.storage.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "a")
    await store.open()
    a = World(store)
    await a.control.start()
    issued = await a.control.issue("room")
    await a.finish()
    reset_id = issued["record"]["reset_id"]
    relay_pub = make_identity().pub
    a.control.note_relay_ack(relay_pub, reset_id, False, T0 + 1)
    a.control.note_relay_ack(relay_pub, reset_id, True, T0 + 2)
    await a.finish()
    await store.close()
    store = SQLiteStore(tmp_path / "a")
    await store.open()
    again = World(store, a.identity)
    await again.control.start()
    assert again.control.describe(reset_id)["relays"] == [{"pub": relay_pub, "fence_installed": True, "purge_done": True, "at": T0 + 2}]
    assert again.control.describe(reset_id)["acknowledged"] == []
    await again.finish()
    await store.close()


async def test_ttl_rules_of_a_trusted_relay_are_applied_and_lifted():
    from gunrelay.core.reset import ttl_soul

    a = await make_world()
    b = await make_world(trusted=(a.identity.pub,))
    stranger = await make_world(trusted=(make_identity().pub,))
    await a.expiry.set("tmp", 60)
    await finish_all(a)
    soul = ttl_soul(a.identity.pub)

    async def carry(to):
        found = await a.store.read(ReadQuery(soul=soul))
        node = {"_": {"#": soul, ">": {k: st for k, _, st in found[soul]}}}
        node.update({k: json.loads(v) for k, v, _ in found[soul]})
        Socket(to.relay).send({"#": f"ttl{id(to)}{len(found[soul])}{a.now}", "put": {soul: node}})
        await settle()
        await finish_all(to)

    await carry(b)
    await carry(stranger)
    assert b.expiry.rules == {"tmp": 60_000.0} and await b.store.load_ttls() == {"tmp": 60_000.0}
    assert b.control.fence.blocks("tmp/x", T0 - 61_000, T0) is not None
    assert stranger.expiry.rules == {}
    a.now += 10
    b.now = a.now
    assert await a.expiry.remove("tmp") is not None
    await finish_all(a)
    await carry(b)
    assert b.expiry.rules == {} and b.control.fence.blocks("tmp/x", T0 - 61_000, b.now) is None
