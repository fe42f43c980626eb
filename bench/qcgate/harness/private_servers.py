"""A Redis server and a PostgreSQL cluster of the test's own, on free loopback ports, that it may kill
and restart without disturbing the machine's shared ones (the chaos run, ``qcgate.bench.chaos``).

PostgreSQL refuses to run as root, so when we are root its tools run as the ``postgres`` user
(``runuser``), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import redis

from qcgate.harness.peers import free_port

REDIS_SERVER = "/usr/bin/redis-server"
POSTGRES_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or ["/usr/lib/postgresql/15/bin"]


def postgres_tool(name: str) -> str:
    return str(Path(POSTGRES_BIN[0]) / name)


class OwnRedis:
    """``redis-server`` on a free port, nothing persisted; ``kill`` is kill -9, ``start`` reuses the port."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None


class OwnPostgres:
    """A PostgreSQL cluster in a directory of its own on a free port (trust auth, loopback only).

    The directory is made under /tmp, not under a test's tmp_path: those are private to root, and
    the ``postgres`` user must reach its cluster. ``stop`` removes it.
    """

    def __init__(self) -> None:
        self.directory, self.port = Path(tempfile.mkdtemp(prefix="qcgate-postgres-", dir="/tmp")), free_port()
        self.data = self.directory / "cluster"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/qcgate"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, capture_output=True, timeout=120)

    def create(self) -> Self:
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(postgres_tool("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run(
            postgres_tool("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "qcgate"
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        log = str(self.directory / "pg.log")
        self._run(postgres_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a power cut would: no checkpoint, recovery on the next start."""
        self._run(postgres_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the cluster and remove its directory."""
        subprocess.run(
            [*self.as_postgres, postgres_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
