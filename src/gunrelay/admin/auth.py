"""Who is calling the admin API: the operator token, or a console session; and from where.

Two ways in. The operator token (``Authorization: Bearer``) is for the CLI and scripts; a browser
never sends it by itself, so it needs no CSRF token. The console logs in with a user and
password: the relay keeps only an Argon2id hash of each password (``admin``'s password is the
operator secret generated on first start), and a login opens a session held in an ``HttpOnly``,
``SameSite=Strict`` cookie that expires. A session's state-changing requests must also carry
its CSRF token in ``X-CSRF-Token``. Sessions are kept in the store
(``server/console_sessions.py``, by the SHA-256 of their key), so every process of a fleet knows a
login made through any of them and a restart logs nobody out; each process keeps the ones it has
seen in memory and asks the store again after ``RECHECK_S``, so a logout through one process ends
the session on all within that. Failed logins are throttled per address and per user
(``core.lockout``). An optional allowlist of addresses or networks applies to everything.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from ..core.errors import OperatorError, RemoteError
from ..core.lockout import LoginThrottle
from ..server.console_sessions import SharedSessions

COOKIE = "gunrelay_session"
CSRF_HEADER = "x-csrf-token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_SESSIONS = 1000
RECHECK_S = 2.0  # a session known here is looked up in the store again after this (a logout elsewhere)


@dataclass
class Session:
    key: str
    user: str
    csrf: str
    expires: float  # s since the epoch
    address: str


@dataclass(frozen=True)
class Caller:
    who: str  # the console user, or "token"
    address: str
    session: Session | None = None


class Refused(RemoteError):
    """The request may not go on: ``status`` (401 log in, 403 you may not, 429 wait) and why."""

    def __init__(self, status: int, reason: str, text: str, retry_after_s: float | None = None):
        super().__init__(text)
        self.status = status
        self.reason = reason  # a metrics label
        self.retry_after_s = retry_after_s


@dataclass
class AdminCounters:
    logins: dict[str, int] = field(default_factory=dict)  # outcome -> count
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


def parse_allowlist(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise OperatorError(f"--admin-allow: {item!r} is not an address or network") from None
    return tuple(networks)


class ConsoleAuth:
    def __init__(
        self,
        operator_token: str,
        *,
        session_ttl_s: float = 8 * 3600,
        allow: str = "",
        throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.time,
        store: SharedSessions | None = None,
    ):
        self._hasher = PasswordHasher()  # Argon2id with the library's recommended parameters
        self._passwords = {"admin": self._hasher.hash(operator_token)}
        self._bearer = ("Bearer " + operator_token).encode()
        self.session_ttl_s = session_ttl_s
        self.allowlist = parse_allowlist(allow)
        self.throttle = throttle or LoginThrottle()
        self.clock = clock
        self.store = store  # where sessions are shared (None: in this process only)
        self.sessions: dict[str, Session] = {}  # by key: the ones this process has seen
        self._checked: dict[str, float] = {}  # by key: when the store last confirmed it
        self.counters = AdminCounters()

    # -- every request ------------------------------------------------------------------------

    def allowed(self, address: str) -> bool:
        if not self.allowlist:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.allowlist)

    async def identify(self, method: str, headers: Mapping[str, str], cookies: Mapping[str, str], address: str) -> Caller:
        """The caller of a request, or ``Refused``. ``headers`` maps lower-case names to values."""
        get = headers.get
        if not self.allowed(address):
            raise self._refuse(403, "allowlist", f"{address} is not allowed to use the admin API (--admin-allow).")
        authorization = get("authorization")
        if authorization is not None:
            if not secrets.compare_digest(authorization.encode(), self._bearer):
                raise self._refuse(401, "token", "missing or wrong operator token (Authorization: Bearer <token>)")
            return Caller("token", address)
        session = await self.session_of(cookies.get(COOKIE, ""))
        if session is None:
            raise self._refuse(401, "session", "log in first (no live console session), or send the operator token")
        if method in STATE_CHANGING:
            given = get(CSRF_HEADER) or ""
            if not secrets.compare_digest(given.encode(), session.csrf.encode()):
                raise self._refuse(403, "csrf", f"missing or wrong CSRF token (send the session's token in {CSRF_HEADER})")
        return Caller(session.user, address, session)

    def _refuse(self, status: int, reason: str, text: str, retry_after_s: float | None = None) -> Refused:
        self.counters.count(self.counters.refused, reason)
        return Refused(status, reason, text, retry_after_s)

    async def session_of(self, key: str) -> Session | None:
        if not key:
            return None
        now = self.clock()
        session = self.sessions.get(key)
        if session is not None and session.expires <= now:
            self._forget(key)
            return None
        if self.store is None or (session is not None and now - self._checked.get(key, float("-inf")) < RECHECK_S):
            return session
        stored = await self.store.load(key, now)  # opened elsewhere, or still open here?
        if stored is None:
            self._forget(key)
            return None
        session = Session(key, stored.user, stored.csrf, stored.expires, stored.address)
        self._remember(session, now)
        return session

    def _remember(self, session: Session, now: float) -> None:
        for key in [k for k, s in self.sessions.items() if s.expires <= now]:
            self._forget(key)
        while len(self.sessions) >= MAX_SESSIONS:
            self._forget(next(iter(self.sessions)))  # the oldest login goes first
        self.sessions[session.key] = session
        self._checked[session.key] = now

    def _forget(self, key: str) -> None:
        self.sessions.pop(key, None)
        self._checked.pop(key, None)

    # -- logging in and out ------------------------------------------------------------------

    async def login(self, user: str, password: str, address: str) -> Session:
        """A new session, or ``Refused`` (403 not allowed, 429 locked out, 401 wrong user or password)."""
        if not self.allowed(address):
            raise self._refuse(403, "allowlist", f"{address} is not allowed to use the admin API (--admin-allow).")
        keys = ("address:" + address, "user:" + user)
        wait = self.throttle.locked(keys, self.clock())
        if wait is not None:
            self.counters.count(self.counters.logins, "locked_out")
            raise self._refuse(429, "lockout", f"too many failed logins; try again in {wait:.0f} s", retry_after_s=wait)
        if not await asyncio.to_thread(self._verify, user, password):  # Argon2 takes tens of ms: not on the loop
            locked = self.throttle.failed(keys, self.clock())
            self.counters.count(self.counters.logins, "failed")
            extra = f" Too many failures: logins are locked for {self.throttle.lockout_s:.0f} s." if locked else ""
            raise self._refuse(401, "login", "wrong user or password." + extra)
        self.throttle.succeeded(keys)
        self.counters.count(self.counters.logins, "ok")
        return await self._open_session(user, address)

    def _verify(self, user: str, password: str) -> bool:
        stored = self._passwords.get(user)
        if stored is None:
            self._hasher.hash(password)  # the same work as a known user, so timing tells nothing
            return False
        try:
            return self._hasher.verify(stored, password)
        except VerificationError:
            return False

    async def _open_session(self, user: str, address: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now + self.session_ttl_s, address)
        if self.store is not None:  # durable before the cookie is handed out
            await self.store.save(session.key, user, session.csrf, session.expires, address, now)
        self._remember(session, now)
        return session

    async def logout(self, session: Session) -> None:
        self._forget(session.key)
        if self.store is not None:
            await self.store.delete(session.key)

    def cookie(self, session: Session | None, secure: bool) -> str:
        """The Set-Cookie header value that opens (or, for None, clears) the session cookie."""
        flags = "; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")
        if session is None:
            return f"{COOKIE}=; Max-Age=0{flags}"
        return f"{COOKIE}={session.key}; Max-Age={int(self.session_ttl_s)}{flags}"
