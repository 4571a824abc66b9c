"""Console sessions shared through the store: two ``ConsoleAuth`` (two processes of a fleet) on one
store, with an injected clock. A login through one works through the other (with its CSRF token),
a logout through one ends the session on the other within ``RECHECK_S``, expiry holds, and the
store keeps no usable cookie."""

from __future__ import annotations

import pytest

from gunrelay.admin.auth import COOKIE, RECHECK_S, ConsoleAuth, Refused
from gunrelay.server.console_sessions import SharedSessions
from gunrelay.storage.memory import MemoryStore

TOKEN = "t-operator-secret-for-the-tests"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def two_processes(clock: Clock) -> tuple[ConsoleAuth, ConsoleAuth, MemoryStore]:
    store = MemoryStore()
    shared = SharedSessions(store, keep=1000)
    return (ConsoleAuth(TOKEN, clock=clock, store=shared, session_ttl_s=3600),
            ConsoleAuth(TOKEN, clock=clock, store=shared, session_ttl_s=3600), store)


async def test_a_login_through_one_process_works_through_the_other_and_a_logout_ends_it_on_both():
    clock = Clock()
    a, b, store = two_processes(clock)
    session = await a.login("admin", TOKEN, "10.0.0.1")
    cookies = {COOKIE: session.key}
    caller = await b.identify("POST", {"x-csrf-token": session.csrf}, cookies, "10.0.0.2")
    assert caller.who == "admin" and caller.session is not None and caller.session.csrf == session.csrf
    with pytest.raises(Refused) as wrong:
        await b.identify("POST", {"x-csrf-token": "not-it"}, cookies, "10.0.0.2")
    assert wrong.value.status == 403

    assert caller.session is not None
    await b.logout(caller.session)
    clock.now += RECHECK_S  # a's copy is asked about again
    with pytest.raises(Refused) as gone:
        await a.identify("GET", {}, cookies, "10.0.0.1")
    assert gone.value.status == 401
    assert store._sessions == {}


async def test_a_shared_session_expires_everywhere_and_the_store_holds_no_cookie():
    clock = Clock()
    a, b, store = two_processes(clock)
    session = await a.login("admin", TOKEN, "10.0.0.1")
    [kept] = store._sessions.values()
    assert session.key not in repr(kept) and kept.digest != session.key  # only its digest
    clock.now += 3600
    for auth in (a, b):
        with pytest.raises(Refused):
            await auth.identify("GET", {}, {COOKIE: session.key}, "10.0.0.1")
