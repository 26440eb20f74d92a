"""`make serve`: the production stack (deploy/stack.py) in the foreground until SIGTERM or SIGINT.

    python -m deploy.serve [--mode split|daphne] [--wsgi-workers 4] [--wsgi-threads 4] [--asgi-processes 2]
                           [--host 127.0.0.1] [--port 8000] [--live-port 0]

Refuses to start without SECRET_KEY, DATABASE_URL and REDIS_URL, or with DEBUG on. If a server process exits, the
whole stack stops (a supervisor such as systemd restarts it); on a signal every process stops gracefully.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from deploy.stack import Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["split", "daphne"], default="split")
    parser.add_argument("--wsgi-workers", type=int, default=int(os.environ.get("WSGI_WORKERS", 4)))
    parser.add_argument("--wsgi-threads", type=int, default=int(os.environ.get("WSGI_THREADS", 4)))
    parser.add_argument("--asgi-processes", type=int, default=int(os.environ.get("ASGI_PROCESSES", 2)))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument("--live-port", type=int, default=int(os.environ.get("LIVE_PORT", 0)),
                        help="also serve /ws/ and the SSE stream straight from the daphne processes on this port, "
                             "for a load balancer in front (default: off, everything through nginx)")
    args = parser.parse_args()
    missing = [name for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        sys.exit(f"Refusing to start the production stack: set {', '.join(missing)} in the environment "
                 "(SECRET_KEY: 50+ random characters; DATABASE_URL: postgres://...; REDIS_URL: redis://...).")
    env = {"DEBUG": os.environ.get("DEBUG", "false")}
    if env["DEBUG"].lower() not in ("0", "false", "no", "off"):
        sys.exit("Refusing: the production stack runs with DEBUG off (unset DEBUG or set DEBUG=0).")
    stack = Stack(mode=args.mode, wsgi_workers=args.wsgi_workers, wsgi_threads=args.wsgi_threads,
                  asgi_processes=args.asgi_processes, host=args.host, port=args.port, env=env,
                  live_port=args.live_port)
    stopping: list[bool] = []

    def on_signal(*_: object) -> None:
        stopping.append(True)
        if not started:
            raise SystemExit(1)  # still starting: start() stops what it began

    started = False
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack.start()
    started = True
    layout = (f"gunicorn x{args.wsgi_workers}x{args.wsgi_threads} threads (HTTP) + daphne x{args.asgi_processes} (/ws/, SSE)"
              if args.mode == "split" else f"daphne x{args.asgi_processes} (everything)")
    live = f"; /ws/ and SSE also straight from daphne on {stack.live_url}" if stack.live_url else ""
    print(f"Scoreboard (production) on {stack.url}/ : nginx -> {layout}{live}; logs in {stack.dir}", flush=True)
    try:
        while not stopping:
            for process in stack.processes():
                if process.poll() is not None:
                    print(f"{process.args[:3]} exited with {process.returncode}; stopping", file=sys.stderr)
                    stopping.append(True)
            time.sleep(0.5)
    finally:
        print("Stopping: " + ", ".join(f"{k}={v}" for k, v in stack.stop().items()), flush=True)


if __name__ == "__main__":
    main()
