"""Every setting in one table: it feeds the CLI options, the environment variables and the docs.

A setting's environment variable is ``GUNRELAY_<NAME>``; the command line wins over the
environment, which wins over the default. ``tests/test_config.py`` fails if a setting is missing
from the README. A setting with a fixed set of values (``choices``) refuses anything else, naming
the choices: a typo must not quietly become a default.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .core import sea
from .core.errors import RemoteError
from .core.forwarded import DEFAULT_TRUSTED, BadProxyList, TrustedProxies


class InvalidSetting(RemoteError):
    """A setting's value cannot be used; the text names the setting and what it accepts."""


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()  # the only values allowed (compared case-insensitively, stored as written here)
    flag: str = ""  # the command-line option when it is not --<name>
    repeat: bool = False  # the option may be given several times (the environment variable: comma-separated)

    @property
    def env(self) -> str:
        return "GUNRELAY_" + self.name.upper()

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "127.0.0.1", "address to listen on (0.0.0.0 for every interface)"),
    Setting("port", int, 8765, "TCP port to listen on (0 picks a free one)"),
    Setting("data", str, "./gunrelay-data", "data folder: the SQLite store and the relay's files"),
    Setting("storage", str, "sqlite", "storage backend: sqlite (durable, default), memory (lost on exit) or postgres (--postgres-url)", ("sqlite", "memory", "postgres")),
    Setting("sqlite_synchronous", str, "FULL", "SQLite synchronous mode: FULL (fsync every commit) or NORMAL", ("FULL", "NORMAL")),
    Setting("postgres_url", str, "", "the PostgreSQL database of --storage postgres (postgresql://USER@HOST:PORT/DB)"),
    Setting("workers", int, 1, "relay processes serving one port (SO_REUSEPORT), a fleet on one store: more than 1 needs --storage postgres"),
    Setting("max_frame_bytes", int, 16 * 1024 * 1024, "largest websocket frame accepted; larger ones get an error"),
    Setting("max_send_queue_bytes", int, 32 * 1024 * 1024, "a peer that stops reading is closed once this much waits for it"),
    Setting("max_skew_ms", int, 120_000, "how far in the future a state may be: later ones wait, further ones are refused"),
    Setting("keepalive_s", float, 20.0, "seconds between '[]' keepalive frames to every peer"),
    Setting("gun_dir", str, "", "folder of the npm gun package served as /gun.js (default: ./node_modules/gun, searched upwards)"),
    Setting("log_level", str, "info", "logging level: debug, info, warning, error", ("debug", "info", "warning", "error")),
    Setting("admin_token", str, "", "the operator's API token (default: generated on first start into DATA/admin-token)"),
    Setting("system_node", str, "_whisperz_system", "legacy system node where reset/config are published for existing apps"),
    Setting("legacy_nodes", bool, True, "publish the legacy system node on resets: on or off"),
    Setting("instance", str, "default", "instance name published in the legacy config node"),
    Setting("max_subscriptions", int, 50_000, "souls and keys one connection may follow (each counts one); a get for more is refused with an error"),
    Setting("clock_settle_s", float, 600.0, "after a jump of the wall clock, resets, rotations and TTL purges wait this long"),
    Setting("ttl_sweep_s", float, 60.0, "seconds between sweeps that delete fields expired by TTL rules"),
    Setting("max_connections", int, 10_000, "most connections open at once, websockets and half-sent requests (0: no limit of its own; never past the descriptor limit); more are refused"),
    Setting("max_connections_per_address", int, 256, "most connections open at once from one address, websockets and half-sent requests (0: no limit)"),
    Setting("handshake_timeout_s", float, 10.0, "seconds a connection has to send its request line and headers (and finish a websocket upgrade); then it is closed"),
    Setting("max_messages_per_s", float, 1000.0, "messages a second one connection may send (0: no limit); more are refused with an error"),
    Setting("message_burst", float, 5000.0, "messages a connection may send at once before its rate limit applies"),
    Setting("max_fields_per_s", float, 20_000.0, "put fields a second one connection may send, a signed (SEA) field counting 26 (0: no limit); a put over it is refused with an error"),
    Setting("field_burst", float, 50_000.0, "put fields (signed ones counting 26) a connection may send at once before its field rate applies"),
    Setting("admin_allow", str, "", "addresses or networks allowed to use the console and the API, comma-separated (default: any)"),
    Setting("session_ttl_s", float, 8 * 3600.0, "seconds a console login lasts"),
    Setting("login_max_failures", int, 5, "failed logins (per address, and per user) within 5 minutes before a lockout"),
    Setting("login_lockout_s", float, 900.0, "seconds a lockout lasts"),
    Setting("privacy", bool, False, "privacy mode at start: on anonymises addresses in the console, the API and the logs"),
    Setting("tls_cert", str, "", "PEM certificate (chain) file: serve https:// and wss:// directly (with --tls-key; default: plain http)"),
    Setting("tls_key", str, "", "PEM private key file of --tls-cert (unencrypted, readable by the relay)"),
    Setting("trusted_proxies", str, DEFAULT_TRUSTED, "addresses or networks of reverse proxies whose X-Forwarded-For / Forwarded headers name the client, comma-separated (empty: trust none)"),
    Setting("peers", str, "", "a relay to link to, ws://HOST:PORT/gun or wss://... (a gunrelay or a GunJS relay); repeat the option for more (env: comma-separated)",
            flag="--peer", repeat=True),
    Setting("trust_relays", str, "", "the SEA pub of a relay whose signed resets this relay obeys (as on GET /-/identity); repeat the option for more (env: comma-separated)",
            flag="--trust-relay", repeat=True),
    Setting("mesh_sync_wait_s", float, 10.0, "with --trust-relay and --peer: seconds at most that clients wait at start until the relay is in step with its peers (their resets installed)"),
)


@dataclass(frozen=True)
class Settings:
    """The relay's settings, typed; build one with ``load_config`` (the table above gives every
    default, ``tests/test_config.py`` checks that the two name the same settings and types)."""

    host: str
    port: int
    data: str
    storage: str
    sqlite_synchronous: str
    postgres_url: str
    workers: int
    max_frame_bytes: int
    max_send_queue_bytes: int
    max_skew_ms: int
    keepalive_s: float
    gun_dir: str
    log_level: str
    admin_token: str
    system_node: str
    legacy_nodes: bool
    instance: str
    max_subscriptions: int
    clock_settle_s: float
    ttl_sweep_s: float
    max_connections: int
    max_connections_per_address: int
    handshake_timeout_s: float
    max_messages_per_s: float
    message_burst: float
    max_fields_per_s: float
    field_burst: float
    admin_allow: str
    session_ttl_s: float
    login_max_failures: int
    login_lockout_s: float
    privacy: bool
    tls_cert: str
    tls_key: str
    trusted_proxies: str
    peers: str
    trust_relays: str
    mesh_sync_wait_s: float

    @property
    def peer_urls(self) -> tuple[str, ...]:
        return peer_urls(self.peers)

    @property
    def trusted_relays(self) -> tuple[str, ...]:
        return trusted_relays(self.trust_relays)


SWITCH = {"on": True, "off": False}  # how a bool setting is written, on the command line and in the environment


def _checked(setting: Setting, raw: Any, source: str) -> Any:
    if setting.type is bool:
        if type(raw) is bool:
            return raw
        switch = SWITCH.get(str(raw).strip().lower())
        if switch is None:
            raise InvalidSetting(f"{source}={raw!r} is not one of: on, off")
        return switch
    try:
        value = setting.type(raw)
    except (TypeError, ValueError):
        raise InvalidSetting(f"{source}={raw!r} is not a valid {setting.type.__name__}") from None
    if setting.choices:
        chosen = next((choice for choice in setting.choices if choice.lower() == str(value).strip().lower()), None)
        if chosen is None:
            raise InvalidSetting(f"{source}={raw!r} is not one of: {', '.join(setting.choices)}")
        value = chosen
    return value


def peer_urls(text: str, source: str = "--peer") -> tuple[str, ...]:
    """The relays to link to, from a comma-separated list; a URL that cannot be dialled is refused."""
    urls: list[str] = []
    for item in text.split(","):
        url = item.strip()
        if not url:
            continue
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise InvalidSetting(f"{source}={url!r}: the port is not a number from 0 to 65535") from None
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise InvalidSetting(f"{source}={url!r} is not a websocket URL such as ws://127.0.0.1:8765/gun or wss://relay.example/gun")
        if port == 0 or parts.fragment or any(c.isspace() for c in url):
            raise InvalidSetting(f"{source}={url!r} cannot be dialled (port 0, a #fragment or a space)")
        if url not in urls:
            urls.append(url)
    return tuple(urls)


def trusted_relays(text: str, source: str = "--trust-relay") -> tuple[str, ...]:
    """The relays whose resets this one obeys, from a comma-separated list of SEA pubs."""
    pubs: list[str] = []
    for item in text.split(","):
        pub = item.strip()
        if not pub:
            continue
        if not sea.is_pub(pub):
            raise InvalidSetting(f"{source}={pub!r} is not a relay's SEA pub (two base64url P-256 coordinates joined by '.', as GET /-/identity shows)")
        if pub not in pubs:
            pubs.append(pub)
    return tuple(pubs)


def load_config(cli: dict[str, Any] | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the command line, then the environment, then the defaults (``overrides`` win).
    Raises ``InvalidSetting`` for a value that cannot be used."""
    env = os.environ if env is None else env
    cli = {**(cli or {}), **overrides}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each setting was given, as an error names it
    for setting in SETTINGS:
        given = cli.get(setting.name)
        if setting.repeat and isinstance(given, (list, tuple)):
            given = ",".join(given)
        if given is not None:
            values[setting.name] = _checked(setting, given, setting.option)
            sources[setting.name] = setting.option
        elif setting.env in env:
            values[setting.name] = _checked(setting, env[setting.env], setting.env)
            sources[setting.name] = setting.env
        else:
            values[setting.name] = setting.default
            sources[setting.name] = setting.option
    if values["storage"] == "postgres" and not values["postgres_url"]:
        raise InvalidSetting("--storage postgres needs --postgres-url (or GUNRELAY_POSTGRES_URL)")
    if not 1 <= values["workers"] <= 256:
        raise InvalidSetting(f"{sources['workers']}: {values['workers']} is not a number of processes from 1 to 256")
    if values["workers"] > 1 and values["storage"] != "postgres":
        raise InvalidSetting(
            f"{sources['workers']} {values['workers']} needs --storage postgres: the processes share one store, and "
            + ("an SQLite data file has one writer process (its data folder is locked by one relay)" if values["storage"] == "sqlite"
               else "with --storage memory each process would hold a graph of its own")
            + "; run one process, or use --storage postgres --postgres-url postgresql://USER@HOST:PORT/DB"
        )
    settings = Settings(**values)
    # refused at start, not when dialled or when a record arrives
    peer_urls(settings.peers, sources["peers"])
    trusted_relays(settings.trust_relays, sources["trust_relays"])
    try:
        TrustedProxies.parse(settings.trusted_proxies)
    except BadProxyList as exc:
        raise InvalidSetting(f"{sources['trusted_proxies']}: {exc}") from None
    check_tls(settings.tls_cert, settings.tls_key, sources["tls_cert"], sources["tls_key"])
    return settings


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    raise _EncryptedKey  # never OpenSSL's prompt on the terminal: a service has none, and would hang


def check_tls(cert: str, key: str, cert_source: str = "--tls-cert", key_source: str = "--tls-key") -> None:
    """Both files or neither; both readable PEM, the key unencrypted and the certificate's own.
    Loaded the way the server will load them (Python's ``ssl``), so whatever would fail there
    fails here, at start, with the file named."""
    if not cert and not key:
        return
    if not cert or not key:
        given, missing = (cert_source, key_source) if cert else (key_source, cert_source)
        raise InvalidSetting(f"{given} is set but {missing} is not: TLS needs both the certificate and its key")
    for source, path, marker, what in (
        (cert_source, cert, b"-----BEGIN CERTIFICATE-----", "a PEM certificate"),
        (key_source, key, b"PRIVATE KEY-----", "a PEM private key"),
    ):
        try:
            with open(path, "rb") as file:
                head = file.read(1 << 20)
        except OSError as exc:
            raise InvalidSetting(f"{source}={path!r}: cannot read it: {exc.strerror or exc}") from None
        if marker not in head:
            raise InvalidSetting(f"{source}={path!r} does not hold {what} (no '-----BEGIN ...' block of that kind)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey:
        raise InvalidSetting(f"{key_source}={key!r} is encrypted: give the relay an unencrypted key (readable by its user only)") from None
    except ssl.SSLError as exc:
        why = "the key does not belong to the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else f"not a usable certificate and key ({exc.reason or exc})"
        raise InvalidSetting(f"{cert_source}={cert!r} with {key_source}={key!r}: {why}") from None
    except OSError as exc:
        raise InvalidSetting(f"{cert_source}={cert!r} with {key_source}={key!r}: {exc}") from None
