"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, started on a free
127.0.0.1 port (fsync on, as in production), stopped by its PID and deleted at the end.

PostgreSQL refuses to run as root: when the tests run as root, the folder is given to the
``postgres`` user and the server is started as that user (``subprocess.Popen(user=...)``, which
changes user in the child before it execs, so the PID we hold is the postmaster's own). Each test
asks for a fresh database (``new_database``), so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

def _bin_dir() -> Path:
    """Debian's newest installed server (or GUNRELAY_PG_BIN)."""
    if "GUNRELAY_PG_BIN" in os.environ:
        return Path(os.environ["GUNRELAY_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


BIN = _bin_dir()
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL is not installed ({BIN}/initdb missing): run `make .debian` or tools/install-debian-packages")
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="gunrelay-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run_as(self) -> dict[str, object]:
        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []} if self.user else {}

    def start(self) -> None:
        log = self.root / "initdb.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"],
                stdout=out, stderr=subprocess.STDOUT, timeout=120, cwd=self.root, **self._run_as(),  # type: ignore[call-overload]
            )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {log.read_text()}")
        self.resume()

    def resume(self) -> None:
        """Start the server on its folder and port (first start, or again after ``halt``)."""
        assert self.process is None or self.process.poll() is not None, "the test PostgreSQL server is running"
        self.process = subprocess.Popen(
            [str(BIN / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.root),
             "-c", "fsync=on", "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            stdout=(self.root / "server.log").open("ab"), stderr=subprocess.STDOUT, cwd=self.root, **self._run_as(),  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the test PostgreSQL server did not start") from None
                time.sleep(0.1)

    def halt(self, immediate: bool = False) -> None:
        """Stop the server, keeping its data for ``resume``: a fast shutdown (sessions rolled back,
        a checkpoint) or, ``immediate``, a crash-like one (no checkpoint: recovery replays the WAL
        at the next start)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)

    def tablespace_on(self, folder: Path, name: str) -> None:
        """A tablespace in ``folder`` (given to the server's user), for a database that fills a small disk."""
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{folder}'")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, tablespace: str | None = None) -> str:
        """A fresh, empty database (in ``tablespace``, if given); its URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}" + (f" TABLESPACE {tablespace}" if tablespace else ""))
        return self.url(name)

    def stop(self) -> None:
        self.halt()  # fast shutdown: roll back sessions, checkpoint, exit
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
