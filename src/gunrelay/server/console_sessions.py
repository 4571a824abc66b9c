"""The console's sessions in the store, shared by every process of a fleet.

A login through one process must work through all of them behind a load balancer, and survive a
restart; so sessions live in the store's control log (``ControlLog.save_session``). The store
keeps a session's key only as its SHA-256: a copy of the database holds no usable cookie. The
admin layer (``admin/auth.py``) keeps a short-lived copy of the sessions it has seen and asks
here again after a moment, so a logout through any process ends the session on every one.
"""

from __future__ import annotations

import hashlib

from ..storage.control import ControlLog, StoredSession


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SharedSessions:
    def __init__(self, store: ControlLog, keep: int):
        self.store = store
        self.keep = keep  # at most this many live sessions; past it the oldest go

    async def save(self, key: str, user: str, csrf: str, expires: float, address: str, now: float) -> None:
        await self.store.save_session(StoredSession(digest(key), user, csrf, expires, address), self.keep, now)

    async def load(self, key: str, now: float) -> StoredSession | None:
        return await self.store.load_session(digest(key), now)

    async def delete(self, key: str) -> None:
        await self.store.delete_session(digest(key))
