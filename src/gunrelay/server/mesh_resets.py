"""Resets across the mesh: obeying the relays this one trusts, and hearing who obeyed ours.

Theory of operation. A relay publishes each reset as records signed with its key, in its own SEA
space (``core/reset.py``: ``~<pub>/resets/<reset_id>``). Those records are ordinary writes: they
travel every relay link like any other (``core/engine.py`` sends a write on to every relay link
once admitted, and SEA's admission refuses a forged one), and nothing else is needed to carry
them. What this module adds:

- **Obeying.** ``watch`` sees every batch of fields a merge accepted (``Relay.watch``). A field
  under ``~<pub>/resets/`` of a relay named by ``--trust-relay`` makes it read that record soul
  back from the store and verify it (``core.reset.record_of``: every field signed by that pub,
  one publication); a complete record goes to ``ResetControl.obey``, which installs the same
  fence with the same W (live, then durable), purges, and publishes the record in this relay's
  own space for its own clients. Records of relays it does not trust are stored and passed on
  like any data, and change nothing here; a reset id already held changes nothing either, which
  is what ends the loop when records come back around the mesh.
- **Acknowledging.** Once the fence is durable, and again once the purge is done, this relay
  writes ``~<its pub>/mesh-acks`` <reset_id> = {"issuer", "fence", "purged"}, signed; the write
  travels back. On the issuer, ``watch`` reads such a field (``core.reset.mesh_ack_of``, signature
  checked) and ``ResetControl.note_relay_ack`` keeps it durably: ``gunrelay resets ID`` lists, per
  relay pub, the fence installed and the purge done.
- **Introducing.** When a link turns out to lead to a relay (``Relay.relay_link_listeners``), the
  records of every reset this relay holds (its own, and the originals of those it obeys) are sent
  over it at once, so a relay that was down during a reset fences as soon as its link is back.
- **TTL rules** travel the same way: the operator's rules are published signed at ``~<pub>/ttl``
  (prefix -> ms, null once lifted; ``Expiry.listeners``), and a relay that trusts the publisher
  applies them (``Expiry.apply``) as they arrive, and when a link comes up.

Trust is only about resets: data flows between linked relays whether or not they trust each
other, and every relay's own fence judges it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ..core import sea
from ..core.graph import Field
from ..core.link import Link
from ..core.reads import ReadQuery
from ..core.reset import MESH_ACKS, index_soul, mesh_ack_of, mesh_ack_soul, mesh_ack_value, record_of, ttl_of, ttl_soul
from ..storage.base import decode_value
from .background import Background
from .control import ResetControl
from .expiry import Expiry
from .identity import Identity
from .relay import Relay

log = logging.getLogger("gunrelay.mesh")

ACK_SUFFIX = "/" + MESH_ACKS


class MeshResets:
    def __init__(
        self, relay: Relay, control: ResetControl, identity: Identity, trusted: tuple[str, ...], expiry: Expiry | None = None,
    ):
        self.relay = relay
        self.control = control
        self.identity = identity
        self.expiry = expiry
        self.trusted = frozenset(trusted) - {identity.pub}
        # record souls of trusted relays start with one of these (one C call per accepted field rules most out)
        self._record_prefixes = tuple(index_soul(pub) + "/" for pub in sorted(self.trusted))
        self._ttl_souls = frozenset(ttl_soul(pub) for pub in self.trusted)
        self._tasks = Background()  # records being read back, resets installed, TTL rules applied, introductions

    def pending(self) -> int:
        """Records being read back or resets being installed right now."""
        return len(self._tasks)

    def attach(self) -> None:
        self.relay.watch = self.watch
        self.relay.relay_link_listeners.append(self.introduce)
        if self.expiry is not None:
            self.expiry.listeners.append(self.publish_ttl)

    async def stop(self) -> None:
        await self._tasks.cancel()

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    # -- what merges accepted ---------------------------------------------------------------

    def watch(self, accepted: list[Field]) -> None:
        records: set[str] = set()
        for item in accepted:
            soul = item.soul
            if not soul.startswith("~"):
                continue
            if self._record_prefixes and soul.startswith(self._record_prefixes):
                records.add(soul)
            elif soul.endswith(ACK_SUFFIX):
                self._heard_ack(item)
            elif soul in self._ttl_souls and self.expiry is not None:
                rule = ttl_of(soul, item.key, item.value, item.state, self.relay.clock_ms())
                if rule is not None and not self.control.protected.contains(rule[0]):
                    self._spawn(self.expiry.apply(*rule))
        for soul in records:
            self._spawn(self._read_record(soul))

    def _heard_ack(self, item: Field) -> None:
        ack = mesh_ack_of(item.soul, item.key, item.value, item.state, self.relay.clock_ms())
        if ack is not None and ack.issuer == self.identity.pub and ack.relay != self.identity.pub:
            self.control.note_relay_ack(ack.relay, ack.reset_id, ack.purged, ack.at)

    async def _read_record(self, soul: str) -> None:
        issuer = sea.user_space_pub(soul)
        if issuer is None or issuer not in self.trusted:
            return
        found = await self.relay.store.read(ReadQuery(soul=soul))
        rows = [(key, decode_value(value), state) for key, value, state in found.get(soul, [])]
        record = record_of(soul, rows, issuer, self.relay.clock_ms())
        if record is None:
            return  # incomplete (the rest of its fields are on their way) or not verified
        record = replace(record, issuer=issuer)
        if record.reset_id in self.control.resets:
            return

        async def purged() -> None:
            await self._acknowledge(record.reset_id, issuer, purged=True)

        try:
            if await self.control.obey(record, purged):
                await self._acknowledge(record.reset_id, issuer, purged=False)
        except Exception:
            log.exception("could not install reset %s from relay %s", record.reset_id, issuer)

    async def _acknowledge(self, reset_id: str, issuer: str, purged: bool) -> None:
        soul = mesh_ack_soul(self.identity.pub)
        state = self.relay.clock_ms()
        value = sea.sign_field(self.identity.private_key, soul, reset_id, mesh_ack_value(issuer, purged), state)
        await self.relay.publish([Field(soul, reset_id, value, state)])

    async def publish_ttl(self, prefix: str, ttl_ms: float | None) -> None:
        """Our operator set (or lifted: None) a TTL rule: published signed for the relays that trust us."""
        soul = ttl_soul(self.identity.pub)
        state = self.relay.clock_ms()
        value = sea.sign_field(self.identity.private_key, soul, prefix, ttl_ms, state)
        await self.relay.publish([Field(soul, prefix, value, state)])

    # -- a new relay link: what it must know first --------------------------------------------

    def introduce(self, link: Link) -> None:
        self._spawn(self._introduce(link))

    async def _introduce(self, link: Link) -> None:
        souls = [ttl_soul(self.identity.pub), *sorted(self._ttl_souls)]  # TTL rules: ours, and those we follow
        for held in self.control.resets.values():
            if held.superseded_by is not None:
                continue
            reset_id = held.record.reset_id
            souls.append(f"{index_soul(self.identity.pub)}/{reset_id}")
            if held.record.issuer:
                souls.append(f"{index_soul(held.record.issuer)}/{reset_id}")
        fields: list[Field] = []
        for soul in souls:
            found = await self.relay.store.read(ReadQuery(soul=soul))
            fields.extend(Field(soul, key, decode_value(value), state) for key, value, state in found.get(soul, []))
        if fields and not link.closed:
            self.relay.introduce(link, fields)

