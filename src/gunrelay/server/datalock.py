"""One process at a time on a data folder: the running relay, or the CLI working offline on it.

Relay processes sharing one PostgreSQL store (the fleet) share their data folder (the identity and
the operator token in it): each holds the lock ``shared``, so they run together while a command
working offline on the folder, which holds it alone, is still refused (and refuses them)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..core.errors import LocalError

LOCK_FILE = "relay.lock"


class DataFolderBusy(LocalError):
    """Another process holds the data folder."""


class DataLock:
    def __init__(self, data_dir: Path, shared: bool = False):
        self.path = data_dir / LOCK_FILE
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return  # held already (the command line takes it before the app starts)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DataFolderBusy(
                f"{self.path.parent} is in use by a running relay (or another gunrelay command); "
                "stop it first, or talk to it with --url"
            ) from None
        if not self.shared:  # the one holder's pid, for an operator wondering who holds it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
