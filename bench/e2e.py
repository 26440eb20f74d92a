"""End-to-end benchmark (not a test): the production stack (deploy/stack.py) under load, over loopback only.

    DATABASE_URL=postgres://127.0.0.1:5432/bench_scoreboard REDIS_URL=redis://127.0.0.1:6379/15 \\
        .venv/bin/python bench/e2e.py [--full] [--modes split,daphne] [--viewers 1000] [--seconds 8]

`make bench` (small: 1,000 viewers, both layouts, about 2-3 minutes) and `make bench-full` (5,000 viewers, longer
phases). The database named in DATABASE_URL is dropped and recreated (its name must start with `bench_` or
`scoreboard_bench`); Redis keys live under their own prefix, deleted before and after.

Per layout (`split`: nginx -> gunicorn for HTTP + daphne for /ws/ and SSE; `daphne`: nginx -> daphne for all):
1. ceiling: GET /healthz (a bare Django JSON view through the whole middleware stack) req/s;
2. GET /api/v1/leaderboard req/s;
3. V WebSocket viewers connect (anonymous, through nginx);
4. starts: every user starts actions (zero minimum duration) until there are enough to complete;
5. completions: the started actions are completed as fast as C keep-alive connections allow (or paced to
   --completion-rate per second): completions/s and
   p50/p95/p99 of the complete call, while the viewers receive the boards: delivery latency from the ledger row's
   timestamp to receipt (p50/p99/max over a sample of the completions that put their payer in the top 10, the ones
   that change the board), messages per viewer, viewers whose last board
   differs from the final one;
6. cycle: start-then-complete loops: full cycles/s;
7. integrity: verify_scores (ledger equals totals, each action paid at most once), every acknowledged completion
   paid exactly once, check_leaderboard (Redis board equals the database).
The phases are bench/e2e_phases.py's LayoutRun. Prints one table and writes bench/results/e2e-<timestamp>.json (and
e2e-latest.json).
The load generator is a small raw-asyncio HTTP/1.1 keep-alive client (bench/http_load.py); the viewers
(bench/ws_viewer.py) run in a child process at a lower priority, with kernel receipt times. Both cost the shared 2 cores as little as possible;
every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from deploy.stack import Stack, free_port  # noqa: E402
from e2e_phases import RESULTS, LayoutRun  # noqa: E402
from fanout import forget_redis_keys, recreate_database  # noqa: E402

BENCH_PREFIX = "scoreboard-e2e"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="5,000 viewers, longer phases")
    parser.add_argument("--modes", default="split,daphne", help="layouts to run, comma-separated: split, daphne")
    parser.add_argument("--viewers", type=int, default=None)
    parser.add_argument("--users", type=int, default=500, help="players starting and completing actions")
    parser.add_argument("--connections", type=int, default=48, help="concurrent keep-alive HTTP connections")
    parser.add_argument("--seconds", type=float, default=None, help="length of each timed phase")
    parser.add_argument("--actions", type=int, default=None, help="actions started, then completed")
    parser.add_argument("--viewers-direct", action="store_true",
                        help="viewers connect to the daphne processes' shared live port (make serve's "
                             "LIVE_PORT), not through nginx")
    parser.add_argument("--completion-rate", type=float, default=None,
                        help="pace the completions phase to this many per second (default: as fast as it goes)")
    parser.add_argument("--wsgi-workers", type=int, default=int(os.environ.get("WSGI_WORKERS", 4)))
    parser.add_argument("--wsgi-threads", type=int, default=int(os.environ.get("WSGI_THREADS", 4)))
    parser.add_argument("--asgi-processes", type=int, default=int(os.environ.get("ASGI_PROCESSES", 2)))
    parser.add_argument("--daphne-processes", type=int, default=4, help="daphne processes in the daphne-only layout")
    parser.add_argument("--profile", action="store_true", help="py-spy record the server processes during completions")
    args = parser.parse_args()
    args.viewers = args.viewers if args.viewers is not None else (5000 if args.full else 1000)
    args.seconds = args.seconds if args.seconds is not None else (15 if args.full else 6)
    args.actions = args.actions if args.actions is not None else (20000 if args.full else 6000)
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not set(args.modes) <= {"split", "daphne"}:
        parser.error("--modes takes split and/or daphne")
    if not (0 <= args.viewers <= 20000 and 1 <= args.users <= 20000 and args.seconds <= 120
            and args.actions <= 200000 and 1 <= args.connections <= 512
            and (args.completion_rate is None or 1 <= args.completion_rate <= 5000)):
        parser.error("out of the bounded range")
    return args


# --- Setup -------------------------------------------------------------------------------------------------------


def prepare(users: int) -> list[str]:
    """Migrate, create the zero-duration action type and the players; return their access tokens."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from scores.models import ActionType

    call_command("migrate", verbosity=0)
    ActionType.objects.create(code="tap", name="Tap", points=1, min_duration_seconds=0, max_duration_seconds=3600)
    User = get_user_model()
    password = make_password("bench-password-1")
    User.objects.bulk_create([User(username=f"player{i}", password=password) for i in range(users)], batch_size=1000)
    return [str(AccessToken.for_user(user)) for user in User.objects.order_by("username")]


# --- One layout ----------------------------------------------------------------------------------------------------


async def run_mode(mode: str, args: argparse.Namespace, tokens: list[str], stack_env: dict[str, str]) -> dict:
    stack, layout = _stack(mode, args, stack_env)
    print(f"\n=== {mode}: {layout}", flush=True)
    await asyncio.to_thread(stack.start)
    run = LayoutRun(stack, mode, args, tokens)
    run.result.update(mode=mode, layout=layout)
    try:
        await run.reads()
        await run.connect_viewers()
        await run.starts()
        await run.completions()
        await run.cycles()
        await run.delivery()
        await run.integrity(stack_env)
    finally:
        await run.viewers.stop()
        run.result["stop_exit_codes"] = await asyncio.to_thread(stack.stop)
        stack.cleanup()
    return run.result


def _stack(mode: str, args: argparse.Namespace, stack_env: dict[str, str]) -> tuple[Stack, str]:
    live_port = free_port() if args.viewers_direct else 0
    if mode == "daphne":
        return (Stack(mode="daphne", asgi_processes=args.daphne_processes, env=stack_env, live_port=live_port),
                f"nginx + daphne x{args.daphne_processes}")
    threads = f" ({args.wsgi_threads} threads)" if args.wsgi_threads > 1 else " (sync)"
    return (Stack(mode="split", wsgi_workers=args.wsgi_workers, wsgi_threads=args.wsgi_threads,
                  asgi_processes=args.asgi_processes, env=stack_env, live_port=live_port),
            f"nginx + gunicorn x{args.wsgi_workers}{threads} + daphne x{args.asgi_processes}")


# --- Main -----------------------------------------------------------------------------------------------------------


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    header = ["layout", "ceiling /healthz/s", "GET board/s", "completions/s", "complete p50/p95/p99 ms",
              "cycles/s", "viewers", "delivery p50/p99/max ms", "msgs/viewer", "missing final", "integrity"]
    rows = []
    for r in results:
        c, d = r.get("completions", {}), r.get("delivery", {})
        rows.append([r["layout"], r.get("ceiling_healthz", {}).get("per_second"), r.get("get_leaderboard", {}).get("per_second"),
                     c.get("per_second"), f"{c.get('p50_ms')}/{c.get('p95_ms')}/{c.get('p99_ms')}",
                     r.get("cycles", {}).get("per_second"), d.get("viewers"),
                     f"{d.get('p50_ms')}/{d.get('p99_ms')}/{d.get('max_ms')}", d.get("messages_per_viewer"),
                     d.get("missing_final_board"), "clean" if r.get("integrity", {}).get("clean") else "NOT CLEAN"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print()
    for line in [header, ["-" * w for w in widths], *rows]:
        print(" | ".join(str(x).ljust(w) for x, w in zip(line, widths)))


def main() -> None:
    args = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.viewers + 4096)), hard))
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL (PostgreSQL, a throw-away bench_* database) and REDIS_URL.")
    os.environ.update(bench_environment())
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    began = time.monotonic()
    try:
        for mode in args.modes:
            forget_redis_keys(BENCH_PREFIX)
            recreate_database(os.environ["DATABASE_URL"])
            tokens = prepare(args.users)
            from django.db import connection

            connection.close()
            results.append(asyncio.run(run_mode(mode, args, tokens, dict(os.environ))))
    finally:
        forget_redis_keys(BENCH_PREFIX)
    print_table(results, args)
    write_record(results, args, seconds=round(time.monotonic() - began))


def bench_environment() -> dict[str, str]:
    """The production configuration, with issue 5's abuse limits lifted: the bench's players are not abusers."""
    return {
        "SECRET_KEY": base64.b64encode(os.urandom(48)).decode(), "REDIS_KEY_PREFIX": BENCH_PREFIX,
        "ACCESS_TOKEN_LIFETIME_SECONDS": "7200",
        "DEBUG": "false", "SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING", "LIVE_ALLOW_ANONYMOUS": "true",
        "RATE_LIMITS_ENABLED": "false", "MAX_OPEN_ACTIONS_PER_USER": "100000", "MAX_CONNECTIONS_PER_IP": "1000000",
        "SUSPICION_MIN_DURATION_STREAK": "0", "SUSPICION_WINDOW_POINTS": "0",
    }


def write_record(results: list[dict], args: argparse.Namespace, seconds: int) -> None:
    record = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": seconds,
        "machine": {"cores": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "note": "server, PostgreSQL, Redis and the load generator share these cores"},
        "args": {k: v for k, v in vars(args).items()}, "nginx_workers": os.environ.get("NGINX_WORKERS", "1"),
        "results": results,
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"e2e-{stamp}.json", RESULTS / "e2e-latest.json"):
        path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: bench/results/e2e-{stamp}.json ({seconds} s)")


if __name__ == "__main__":
    main()
