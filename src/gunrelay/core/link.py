"""One connection as the relay engine sees it: who it is and what it may still do.

The engine (``core.engine``) keeps no socket. A server makes one ``Link`` per connection (its own
connection class extends this one with an outbox), hands it to the engine on connect, and the
engine's effects name it as the place to send to. Subscriptions, the dedup cache's origins and
the reads queue hold links by identity.

A link is a *relay link* (``relay``) when the other side is a relay of the mesh: one this relay
dialled (``--peer``), or one that said so when it greeted us. The engine sends every accepted
write to relay links and forwards gets to them (``core.engine``); to everything else a link is a
client like any other: the same checks, limits and admission.
"""

from __future__ import annotations

from .limits import TokenBucket


class Link:
    __slots__ = ("id", "address", "pid", "connected_at", "messages_in", "closed", "bucket", "field_bucket", "relay", "dialled", "relay_pub")

    def __init__(self, link_id: str, address: str, connected_at: float = 0.0, dialled: bool = False):
        self.id = link_id
        self.address = address
        self.pid: str | None = None  # the peer's own id, from the dam '?' exchange
        self.connected_at = connected_at  # seconds since the epoch
        self.messages_in = 0
        self.closed = False
        self.bucket: TokenBucket | None = None  # its message rate limit, set on connect
        self.field_bucket: TokenBucket | None = None  # its put fields' rate limit, set on connect
        self.relay = dialled  # the other side is a relay of the mesh
        self.dialled = dialled  # this relay dialled it (a --peer)
        self.relay_pub: str | None = None  # a relay of the mesh: its SEA pub, from its greeting

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.address}>"
