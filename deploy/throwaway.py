"""Throwaway dependencies for the fault drills (bench/faults.py) and the outage tests: a private PostgreSQL cluster
and a private redis-server, each on a free loopback port under its own temp directory, that the caller may stop,
restart, freeze and remove without touching the machine's own services.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.stack import free_port


class PrivatePostgres:
    """A throwaway cluster: trust auth on 127.0.0.1 only, its socket in its own directory."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            sys.exit("No PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql).")
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="scoreboard-drill-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd=self.dir)

    @property
    def options(self) -> str:
        return f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=200"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE scoreboard")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                  "-o", self.options, "start")

    def restart(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w", "-t", "120",
                  "-m", mode, "-o", self.options, "restart")

    def url(self, database: str = "scoreboard") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join((self.dir / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A throwaway redis-server on 127.0.0.1, no persistence: a restart comes back empty, like a lost cache."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="scoreboard-drill-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._log = open(self.dir / "redis.log", "ab")  # one handle for every start, closed by cleanup()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--maxclients", "10000"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        self._end(signal.SIGTERM, timeout=20)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cleanup(self) -> None:
        self._end(signal.SIGKILL, timeout=10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
