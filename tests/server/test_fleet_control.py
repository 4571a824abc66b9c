"""Control in step across the fleet (server/fleet_control.py), with two processes' worth of objects
(reset control, bans, relay) on two PostgreSQL stores of one database: what one changes the
other reloads into its live fence and ban list, and the changing command waits for every live
process and names the ones that did not confirm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gunrelay.core.fence import Protected
from gunrelay.server.access import Access
from gunrelay.server.fleet_control import ControlSync
from gunrelay.storage.postgres import PostgresStore, ProcessBeat

from test_control import T0, World, make_identity


class Process:
    """One process of the fleet: its store, control, bans and control sync."""

    def __init__(self, url: str, identity):
        self.store = PostgresStore(url, Protected((identity.space, "_whisperz_system")))
        self.world = World(self.store, identity)
        self.access = Access(self.world.relay, self.store)
        self.sync = ControlSync(self.world.control, self.access, self.world.relay, self.store, beat_s=0.2, confirm_s=2.0)
        self.world.control.in_step = self.sync.in_step
        self.access.in_step = self.sync.in_step
        self.world.control.lease = self.store.lease  # as server/fleet.py wires it

    async def start(self) -> None:
        await self.store.open()
        await self.world.control.start()
        await self.access.start()
        await self.sync.start()

    async def stop(self) -> None:
        await self.sync.stop()
        await self.world.control.stop()
        await self.store.close()


@pytest.fixture
async def fleet(postgres_url: str) -> AsyncIterator[tuple[Process, Process]]:
    url = postgres_url
    identity = make_identity()
    first, second = Process(url, identity), Process(url, identity)
    await first.start()
    await second.start()
    yield first, second
    await second.stop()
    await first.stop()


async def test_a_reset_through_one_is_in_the_others_fence_when_the_command_returns(fleet):
    first, second = fleet
    issued = await first.world.control.issue(scope="doomed", reason="test")
    assert issued["fleet_not_confirmed"] == []
    reset_id = issued["record"]["reset_id"]
    rule = second.world.control.fence.blocks("doomed/x", T0 - 1, T0)
    assert rule is not None and rule.rule_id == reset_id
    assert reset_id in second.world.control.resets
    await first.world.finish()  # the purge and the publication ran in the first process only
    assert second.world.control.pending() == 0


async def test_a_ban_and_an_unban_through_one_are_the_others_at_once(fleet):
    first, second = fleet
    await first.access.ban(["203.0.113.5"], 60, "test")
    assert second.access.refuse("203.0.113.5") is not None
    await first.access.unban("203.0.113.5")
    assert second.access.refuse("203.0.113.5") is None


async def test_a_process_that_does_not_confirm_is_named_and_the_command_still_returns(fleet):
    first, second = fleet
    await second.sync.stop()  # it stops applying (and leaves the fleet) ...
    stuck = ProcessBeat("stuck", 4242, "elsewhere", 9999, 0.0, 0.0, -1, 0, 0, 0)
    stuck_store = PostgresStore(first.store.url)
    await stuck_store.open()
    try:
        stuck_store.process_id = "stuck"  # ... and a live process that never applies anything
        await stuck_store.beat(stuck)
        started = asyncio.get_running_loop().time()
        issued = await first.world.control.issue(scope="lagging", reason="test")
        waited = asyncio.get_running_loop().time() - started
        assert issued["fleet_not_confirmed"] == ["pid 4242 on elsewhere:9999"]
        assert waited < first.sync.confirm_s + 1.5  # bounded by the confirmation wait
    finally:
        await stuck_store.close()


async def test_every_live_process_has_a_heartbeat_with_the_version_it_applied(fleet):
    first, second = fleet
    await first.access.ban(["203.0.113.6"], 60, "test")
    beats = await first.store.processes(5.0)
    assert {b.process_id for b in beats} == {first.store.process_id, second.store.process_id}
    version = await first.store.control_version()
    assert all(b.applied == version for b in beats)
    await second.sync.stop()  # a clean stop leaves the fleet at once
    assert [b.process_id for b in await first.store.processes(5.0)] == [first.store.process_id]


async def test_one_process_leads_a_purge_and_the_other_does_not_start_it(fleet):
    first, second = fleet
    rotated = await first.world.control.rotate("old-app", "new-app", grace_s=3600)  # the lead is held through the grace
    reset_id = rotated["record"]["reset_id"]
    assert rotated["fleet_not_confirmed"] == [] and reset_id in second.world.control.resets
    assert await second.store.lease(reset_id) is None  # held by the first process
    await second.world.control.adopt_orphans()
    assert second.world.control.pending() == 0 and reset_id not in second.world.control._leading
    assert reset_id in first.world.control._leading


async def test_a_purge_whose_leading_process_is_gone_is_resumed_by_another(fleet):
    first, second = fleet
    rotated = await first.world.control.rotate("gone-app", "next-app", grace_s=1.0)
    reset_id = rotated["record"]["reset_id"]
    await first.world.control.stop()  # the leading process goes before the purge (its lease with it)
    await second.world.control.adopt_orphans()
    assert reset_id in second.world.control._leading
    await second.world.finish()  # the rest of the grace, then the purge, in the second process
    [held] = [h for h in await second.store.load_resets() if h.record.reset_id == reset_id]
    assert held.purge_done and held.published
    await second.world.control.adopt_orphans()  # done: nobody resumes it again
    assert second.world.control.pending() == 0
