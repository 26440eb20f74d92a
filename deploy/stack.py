"""The production stack on one box: nginx in front of gunicorn (WSGI) and daphne (ASGI) processes.

`split` (the default, what `make serve` runs through deploy/serve.py; the layout the Channels documentation describes): gunicorn workers
(gthread, 4 threads each: a request mostly waits on PostgreSQL) with persistent database connections (CONN_MAX_AGE,
one per thread, reused across requests) serve the API and the pages; daphne processes with
psycopg's connection pool (DB_POOL=1) serve /ws/ and the SSE stream /api/v1/leaderboard/stream. `daphne`: daphne
processes serve everything (the comparison the benchmark makes). nginx (Debian's package) routes by path; it runs
as a non-daemon child with its config, pid, logs and temp files under a private temp directory, so it never
touches a system nginx.

Every backend listens on a socket this process binds to 127.0.0.1:0 and hands over (gunicorn `fd://`, daphne
`--fd`), so concurrent stacks (tests, benchmarks, other people's runs) never collide. Settings come from the
environment (DATABASE_URL, REDIS_URL, SECRET_KEY, ...) plus `env=`.

Stop: SIGTERM to gunicorn (finishes in-flight requests, graceful timeout) and daphne (closes WebSockets with 1001
"going away" and releases their connection counts: scores/consumers.py), then SIGQUIT to nginx (graceful). Each
server runs in its own process group, so a Ctrl-C in the terminal reaches only this process, which then stops them
in that order: sent to them too, it would make gunicorn and nginx quit at once (their SIGINT is a fast shutdown) and
kill daphne with the SIGTERM that follows while it is still closing its sockets.

Used by `make serve`, bench/e2e.py and the tests; importable: `with Stack(env={...}) as stack: stack.url`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).with_name("nginx.conf.template")

# Settings each kind of process gets on top of the caller's environment.
WSGI_ENV = {"DB_CONN_MAX_AGE": "600", "DB_POOL": "false"}  # one persistent connection per worker thread
ASGI_ENV = {"DB_CONN_MAX_AGE": "0", "DB_POOL": "true"}  # CONN_MAX_AGE leaks under ASGI; the pool does not
# daphne's own access log writes each path with its query string (?token=); the request log replaces it.
DAPHNE_NO_ACCESS_LOG = ("--access-log", os.devnull)


def listening_socket(host: str = "127.0.0.1", port: int = 0, *, shared: bool = False) -> socket.socket:
    """A listening socket (port 0: a free one). `shared`: one of several on the same port (SO_REUSEPORT), the kernel
    spreading new connections across them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def nginx_binary() -> str:
    """Debian's nginx, installed with apt-get when missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    print("Installing Debian's nginx (apt-get install nginx-light) ...", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env)
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Stack:
    """nginx + backends on free loopback ports. `start()` returns once every process answers /healthz."""

    def __init__(self, *, mode: str = "split", wsgi_workers: int = 4, asgi_processes: int = 2,
                 wsgi_threads: int = 4, env: dict[str, str] | None = None, port: int = 0,
                 host: str = "127.0.0.1", collectstatic: bool = True, log_dir: str | None = None,
                 live_port: int = 0) -> None:
        if mode not in ("split", "daphne"):
            raise ValueError("mode is split or daphne")
        self.mode, self.wsgi_workers, self.asgi_processes = mode, wsgi_workers, asgi_processes
        self.wsgi_threads = wsgi_threads
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                    "DJANGO_SETTINGS_MODULE": "scoreboard_project.settings"}
        # nginx is the one proxy in front of the app and appends the client's address to X-Forwarded-For.
        self.env.setdefault("TRUSTED_PROXY_COUNT", "1")
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.ws_url = f"ws://{host}:{self.port}"
        # Optional: the daphne processes also listen together on this port, for a load balancer that routes /ws/
        # and the SSE stream straight to them (the nginx hop costs the live path most; README, Benchmarks).
        self.live_port = live_port
        self.live_url = f"ws://{host}:{live_port}" if live_port else None
        self.collectstatic = collectstatic
        self.dir = Path(log_dir or tempfile.mkdtemp(prefix="scoreboard-stack-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.env.get("PROMETHEUS_MULTIPROC_DIR"):
            # /metrics sums every process's samples (prometheus-client multi-process mode): one shared, empty dir.
            (self.dir / "prometheus").mkdir(exist_ok=True)
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(self.dir / "prometheus")
        self.gunicorn: subprocess.Popen | None = None
        self.daphnes: list[subprocess.Popen] = []
        self.nginx: subprocess.Popen | None = None
        self.http_ports: list[int] = []
        self.live_ports: list[int] = []
        self._logs: list = []

    # --- start -------------------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> "Stack":
        try:
            self._clear_metrics()
            if self.collectstatic:
                subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                               cwd=BASE_DIR, env=self.env, check=True)
            if self.mode == "split":
                self._start_gunicorn()
            for index in range(self.asgi_processes):
                self._start_daphne(index)
            if self.mode == "daphne":
                self.http_ports = list(self.live_ports)
            self._start_nginx()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _clear_metrics(self) -> None:
        # A previous run's samples would be summed in (its open-connection gauges never drop): start empty.
        for stale in Path(self.env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink()

    def _log(self, name: str):
        handle = open(self.dir / f"{name}.log", "ab")
        self._logs.append(handle)
        return handle

    def _start_gunicorn(self) -> None:
        listener = listening_socket()
        self.http_ports.append(listener.getsockname()[1])
        worker = ["-k", "gthread", "--threads", str(self.wsgi_threads)] if self.wsgi_threads > 1 else ["-k", "sync"]
        self.gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"fd://{listener.fileno()}", "-w", str(self.wsgi_workers),
             *worker, "--graceful-timeout", "15", "--timeout", "60", "--keep-alive", "5",
             "--worker-tmp-dir", "/dev/shm" if Path("/dev/shm").is_dir() else str(self.dir),
             "--log-level", "warning", "--name", "scoreboard-wsgi", "scoreboard_project.wsgi:application"],
            cwd=BASE_DIR, env={**self.env, **WSGI_ENV}, pass_fds=[listener.fileno()],
            stdout=self._log("gunicorn"), stderr=subprocess.STDOUT, process_group=0,
        )
        listener.close()

    def _start_daphne(self, index: int) -> None:
        listeners = [listening_socket()]
        self.live_ports.append(listeners[0].getsockname()[1])
        shared = []
        if self.live_port:
            listeners.append(listening_socket(self.host, self.live_port, shared=True))
            shared = ["-e", f"fd:fileno={listeners[1].fileno()}"]
        self.daphnes.append(subprocess.Popen(
            [sys.executable, "-m", "daphne", "--fd", str(listeners[0].fileno()), *shared, "--proxy-headers",
             "--ping-interval", "20", *DAPHNE_NO_ACCESS_LOG, "scoreboard_project.asgi:application"],
            cwd=BASE_DIR, env={**self.env, **ASGI_ENV}, pass_fds=[listener.fileno() for listener in listeners],
            stdout=self._log(f"daphne-{index}"), stderr=subprocess.STDOUT, process_group=0,
        ))
        for listener in listeners:
            listener.close()

    def _start_nginx(self) -> None:
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir(exist_ok=True)
        conf = string.Template(TEMPLATE.read_text()).safe_substitute(
            prefix=str(self.dir), host=self.host, port=self.port,
            user_line="user root;" if os.geteuid() == 0 else "",
            worker_connections=20000, nginx_workers=self.env.get("NGINX_WORKERS", "1"),
            http_servers="\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in self.http_ports),
            live_servers="        least_conn;\n" + "\n".join(
                f"        server 127.0.0.1:{port} max_fails=0;" for port in self.live_ports),
        )
        conf_path = self.dir / "nginx.conf"
        conf_path.write_text(conf)
        self.nginx = subprocess.Popen([nginx_binary(), "-p", str(self.dir), "-c", str(conf_path), "-e",
                                       str(self.dir / "error.log")],
                                      stdout=self._log("nginx"), stderr=subprocess.STDOUT, process_group=0)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        targets = [f"http://127.0.0.1:{port}/healthz" for port in sorted(set(self.http_ports + self.live_ports))]
        targets.append(f"{self.url}/healthz")
        for target in targets:
            while True:
                self._check_alive()
                try:
                    if httpx.get(target, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{target} not ready after {timeout} s\n{self.output()}")
                time.sleep(0.2)

    def _check_alive(self) -> None:
        for process in self.processes():
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}\n{self.output()}")

    # --- stop --------------------------------------------------------------------------------------------

    def processes(self) -> list[subprocess.Popen]:
        return [p for p in [self.gunicorn, *self.daphnes, self.nginx] if p is not None]

    def stop(self, timeout: float = 20) -> dict[str, int | None]:
        """Graceful stop (SIGTERM to the app servers, then SIGQUIT to nginx); returns each exit code."""
        backends = [p for p in [self.gunicorn, *self.daphnes] if p is not None]
        for process in backends:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for process in backends:
            codes[" ".join(map(str, process.args[1:3]))] = _wait(process, timeout)
        if self.nginx is not None:
            if self.nginx.poll() is None:
                self.nginx.send_signal(signal.SIGQUIT)
            codes["nginx"] = _wait(self.nginx, timeout)
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        return codes

    def output(self, tail: int = 4000) -> str:
        parts = []
        for path in sorted(self.dir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def pids(self) -> dict[str, list[int]]:
        """Every server process id (gunicorn's workers included), for CPU accounting and profiling."""
        result = {"nginx": [], "gunicorn": [], "daphne": [p.pid for p in self.daphnes]}
        for name, parent in (("nginx", self.nginx), ("gunicorn", self.gunicorn)):
            if parent is not None:
                result[name] = [parent.pid, *_children(parent.pid)]
        return result

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def _wait(process: subprocess.Popen, timeout: float) -> int | None:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
