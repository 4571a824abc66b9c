"""Who is calling the admin API: the operator token, or a console session; and from where.

Two ways in. The operator token (``Authorization: Bearer``) is for the CLI and scripts; a browser
never sends it by itself, so it needs no CSRF token. The console logs in with a user and
password: the relay keeps only an Argon2id hash of each password (``admin``'s password is the
operator secret generated on first start), and a login opens a session held in an ``HttpOnly``,
``SameSite=Strict`` cookie that expires. A session's state-changing requests must also carry
its CSRF token in ``X-CSRF-Token``. Failed logins are throttled per address and per user
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

COOKIE = "gunrelay_session"
CSRF_HEADER = "x-csrf-token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_SESSIONS = 1000


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
    ):
        self._hasher = PasswordHasher()  # Argon2id with the library's recommended parameters
        self._passwords = {"admin": self._hasher.hash(operator_token)}
        self._bearer = ("Bearer " + operator_token).encode()
        self.session_ttl_s = session_ttl_s
        self.allowlist = parse_allowlist(allow)
        self.throttle = throttle or LoginThrottle()
        self.clock = clock
        self.sessions: dict[str, Session] = {}
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

    def identify(self, method: str, headers: Mapping[str, str], cookies: Mapping[str, str], address: str) -> Caller:
        """The caller of a request, or ``Refused``. ``headers`` maps lower-case names to values."""
        get = headers.get
        if not self.allowed(address):
            raise self._refuse(403, "allowlist", f"{address} is not allowed to use the admin API (--admin-allow).")
        authorization = get("authorization")
        if authorization is not None:
            if not secrets.compare_digest(authorization.encode(), self._bearer):
                raise self._refuse(401, "token", "missing or wrong operator token (Authorization: Bearer <token>)")
            return Caller("token", address)
        session = self.session_of(cookies.get(COOKIE, ""))
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

    def session_of(self, key: str) -> Session | None:
        session = self.sessions.get(key) if key else None
        if session is None:
            return None
        if session.expires <= self.clock():
            del self.sessions[key]
            return None
        return session

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
        return self._open_session(user, address)

    def _verify(self, user: str, password: str) -> bool:
        stored = self._passwords.get(user)
        if stored is None:
            self._hasher.hash(password)  # the same work as a known user, so timing tells nothing
            return False
        try:
            return self._hasher.verify(stored, password)
        except VerificationError:
            return False

    def _open_session(self, user: str, address: str) -> Session:
        now = self.clock()
        for key in [k for k, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[key]
        while len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]  # the oldest login goes first
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now + self.session_ttl_s, address)
        self.sessions[session.key] = session
        return session

    def logout(self, session: Session) -> None:
        self.sessions.pop(session.key, None)

    def cookie(self, session: Session | None, secure: bool) -> str:
        """The Set-Cookie header value that opens (or, for None, clears) the session cookie."""
        flags = "; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")
        if session is None:
            return f"{COOKIE}=; Max-Age=0{flags}"
        return f"{COOKIE}={session.key}; Max-Age={int(self.session_ttl_s)}{flags}"
