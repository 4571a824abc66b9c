"""Who is subscribed to what, and so who receives an accepted write.

A get is a subscription (as on GunJS's AXE relay): to a whole soul, or to one key of it. A query
for a key range subscribes to the whole soul: pushing more than was asked is harmless, clients
filter. Subscriptions live as long as the connection; there is no unsubscribe message in GUN.
So that a peer cannot grow them without bound, one soul's key subscriptions turn into a whole-soul
one past ``MAX_KEYS`` (again: more is pushed, nothing is lost), and the relay caps how many souls
one peer follows (``count_of``, ``follows``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

Peer = TypeVar("Peer", bound=Hashable)

ALL_KEYS: frozenset[str] = frozenset()  # marker: the whole soul
MAX_KEYS = 64  # key subscriptions to one soul, per peer, before it follows the whole soul


class Subscriptions(Generic[Peer]):
    __slots__ = ("_by_soul", "_by_peer")

    def __init__(self) -> None:
        # soul -> peer -> set of keys, or ALL_KEYS for the whole soul
        self._by_soul: dict[str, dict[Peer, set[str] | frozenset[str]]] = {}
        self._by_peer: dict[Peer, set[str]] = {}

    def subscribe(self, peer: Peer, soul: str, key: str | None = None) -> None:
        peers = self._by_soul.get(soul)
        if peers is None:
            peers = self._by_soul[soul] = {}
        held = peers.get(peer)
        if key is None:
            peers[peer] = ALL_KEYS
        elif held is None:
            peers[peer] = {key}
        elif held is not ALL_KEYS:
            if len(held) >= MAX_KEYS:
                peers[peer] = ALL_KEYS
            else:
                held.add(key)  # type: ignore[union-attr]
        souls = self._by_peer.get(peer)
        if souls is None:
            souls = self._by_peer[peer] = set()
        souls.add(soul)

    def drop_peer(self, peer: Peer) -> None:
        for soul in self._by_peer.pop(peer, ()):
            peers = self._by_soul.get(soul)
            if peers is not None:
                peers.pop(peer, None)
                if not peers:
                    del self._by_soul[soul]

    def follows(self, peer: Peer, soul: str) -> bool:
        return soul in self._by_peer.get(peer, ())

    def count_of(self, peer: Peer) -> int:
        """How many souls ``peer`` is subscribed to."""
        return len(self._by_peer.get(peer, ()))

    def audience(self, soul: str, keys: Iterable[str]) -> Iterator[tuple[Peer, frozenset[str] | None]]:
        """Each subscriber of ``soul`` with the subset of ``keys`` it wants (None: all of them)."""
        peers = self._by_soul.get(soul)
        if not peers:
            return
        key_list = None
        for peer, wanted in peers.items():
            if wanted is ALL_KEYS:
                yield peer, None
                continue
            if key_list is None:
                key_list = list(keys)
            subset = frozenset(k for k in key_list if k in wanted)
            if subset:
                yield peer, subset

    def __len__(self) -> int:
        return len(self._by_soul)
