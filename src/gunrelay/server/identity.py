"""The relay's identity: a SEA key pair, and the operator's admin token, both kept in the data folder.

The pair signs the reset records the relay publishes in its own user space (``~<pub>``), so that
stock GunJS clients with SEA verify them and nobody else can forge them. It is made on first
start (P-256, as GunJS's ``SEA.pair()`` makes them: ``pub``/``priv`` for signing, ``epub``/``epriv``
for ECDH) and stored with owner-only permissions. The admin token is ``GUNRELAY_ADMIN_TOKEN`` when
set; otherwise one is generated on first start and stored next to the key (a local CLI reads it).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from ..core.errors import LocalError
from ..core.sea import pub_of

IDENTITY_FILE = "identity.json"
TOKEN_FILE = "admin-token"


class DamagedIdentity(LocalError):
    """The relay's identity file does not hold a matching key pair."""


@dataclass(frozen=True)
class Identity:
    pub: str
    epub: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def space(self) -> str:
        return "~" + self.pub


def _b64url(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def _d(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def load_or_create_identity(data_dir: Path) -> Identity:
    path = data_dir / IDENTITY_FILE
    if not path.exists():
        sign = ec.generate_private_key(ec.SECP256R1())
        dh = ec.generate_private_key(ec.SECP256R1())
        pair = {
            "pub": pub_of(sign),
            "priv": _b64url(sign.private_numbers().private_value),
            "epub": pub_of(dh),
            "epriv": _b64url(dh.private_numbers().private_value),
        }
        _write_private(path, json.dumps(pair, indent=1))
    pair = json.loads(path.read_text())
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    key = ec.derive_private_key(_d(pair["priv"]), ec.SECP256R1())
    if pub_of(key) != pair["pub"]:
        raise DamagedIdentity(f"{path}: priv does not match pub; the identity file is damaged")
    return Identity(pub=pair["pub"], epub=pair["epub"], private_key=key)


def local_registry() -> Path:
    """Where a running relay notes, per port, which token file a local CLI should read."""
    base = os.environ.get("GUNRELAY_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "gunrelay"
    )
    return Path(base)


def register_local_relay(port: int, token_file: Path) -> None:
    folder = local_registry()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry = folder / f"port-{port}"
    entry.unlink(missing_ok=True)
    _write_private(entry, str(token_file.resolve()))


def token_file_for_port(port: int) -> Path | None:
    try:
        return Path((local_registry() / f"port-{port}").read_text().strip())
    except OSError:
        return None


def admin_token(data_dir: Path, from_env: str | None) -> tuple[str, Path | None]:
    """The operator token and, when it was generated, the file that holds it."""
    if from_env:
        return from_env, None
    path = data_dir / TOKEN_FILE
    if not path.exists():
        _write_private(path, new_token() + "\n")
    return path.read_text().strip(), path


def new_token() -> str:
    """A random operator token that never starts with '-' (a command line would take it for an option)."""
    return "t" + secrets.token_urlsafe(32)
