"""Fault drills: take PostgreSQL and Redis away under load and check that nothing acknowledged is lost.

    python bench/faults.py [--mode split|daphne] [--workers 16] [--viewers 20] [--json bench/results/faults.json]
    make drills

The drill starts everything it breaks, on free loopback ports under temp directories: a private PostgreSQL
cluster (initdb/pg_ctl from Debian's packages, run as the `postgres` user when this runs as root) and a private
redis-server (no persistence, like a cache). It starts the production stack on them (deploy/stack.py: nginx ->
gunicorn + daphne, DEBUG off), then drives completions (start, then complete; a client whose complete fails
retries the same action, as a real client would) and a few WebSocket viewers through nginx while it

  1. stops Redis for 10 s and starts it again (empty: a restarted cache),
  2. restarts PostgreSQL in fast mode (clean shutdown: sessions are disconnected),
  3. restarts PostgreSQL in immediate mode (no shutdown checkpoint: crash recovery at start-up).

It records every response: the service must answer 503 with Retry-After while a dependency is down, never 500
and never hang past the client timeout, and recover by itself. Then it checks the ledger: every acknowledged
completion is in it exactly once, nothing is paid twice, totals equal the ledger (manage.py verify_scores) and the
Redis boards equal the database (manage.py check_leaderboard). It prints seconds to recover and the count of
each status per phase, and writes them as JSON. Loops are bounded in time; everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from deploy.stack import Stack  # noqa: E402
from deploy.throwaway import PrivatePostgres, PrivateRedis  # noqa: E402
from drill_checks import check_and_report, final_board_check  # noqa: E402
from drill_load import Record, Viewer, player, ready_watch, viewer  # noqa: E402

SECRET_KEY = "fault-drill-only-" + "k" * 48
REDIS_DOWN_SECONDS = 10


# --- The drill -------------------------------------------------------------------------------------------------


async def wait_recovered(record: Record, ready: list, since: float, limit: float = 60) -> dict:
    """Seconds from `since` (the dependency answering again) to the next acknowledged completion and /readyz 200."""
    deadline = time.monotonic() + limit
    result: dict = {"completions": None, "readyz": None}
    while time.monotonic() < deadline and None in result.values():
        if result["completions"] is None and any(at > since for at in record.ok_at[-50:]):
            result["completions"] = round(min(at for at in record.ok_at[-50:] if at > since) - since, 2)
        if result["readyz"] is None:
            ok = [at for at, status in ready[-50:] if at > since and status == 200]
            if ok:
                result["readyz"] = round(ok[0] - since, 2)
        await asyncio.sleep(0.1)
    return result


async def drive(stack: Stack, pg: PrivatePostgres, redis: PrivateRedis, tokens: list[str], viewer_tokens: list[str],
                settle: float) -> tuple[Record, list[Viewer], dict, dict]:
    record, ready, stop_load, stop_view = Record(), [], asyncio.Event(), asyncio.Event()
    viewers = [Viewer() for _ in viewer_tokens]
    players = [asyncio.create_task(player(stack.url, token, record, stop_load)) for token in tokens]
    watchers = [asyncio.create_task(viewer(stack.ws_url, token, state, stop_view))
                for token, state in zip(viewer_tokens, viewers)]
    watchers.append(asyncio.create_task(ready_watch(stack.url, ready, stop_view)))
    faults: dict = {}
    try:
        await asyncio.sleep(settle)

        record.phase = "redis down 10 s"
        began = time.monotonic()
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(REDIS_DOWN_SECONDS)
        await asyncio.to_thread(redis.start)
        back = time.monotonic()
        record.phase = "after redis"
        faults["redis stop 10 s"] = {"down_seconds": round(back - began, 2),
                                     "recover_seconds": await wait_recovered(record, ready, back)}
        await asyncio.sleep(settle)

        for mode in ("fast", "immediate"):
            record.phase = f"postgres restart ({mode})"
            began = time.monotonic()
            await asyncio.to_thread(pg.restart, mode)
            back = time.monotonic()
            record.phase = f"after postgres {mode}"
            faults[f"postgres restart -m {mode}"] = {"down_seconds": round(back - began, 2),
                                                     "recover_seconds": await wait_recovered(record, ready, back)}
            await asyncio.sleep(settle)
        record.phase = "cool-down"
        await asyncio.sleep(2)
        stop_load.set()
        await asyncio.gather(*players, return_exceptions=True)
        board = await final_board_check(viewers)
    finally:
        stop_load.set()
        stop_view.set()
        for task in players + watchers:
            task.cancel()
        await asyncio.gather(*players, *watchers, return_exceptions=True)
    return record, viewers, faults, board


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["split", "daphne"], default="split")
    parser.add_argument("--workers", type=int, default=16, help="concurrent players (one user each)")
    parser.add_argument("--viewers", type=int, default=20, help="WebSocket viewers")
    parser.add_argument("--settle", type=float, default=6, help="seconds of steady load before and after faults")
    parser.add_argument("--wsgi-workers", type=int, default=3)
    parser.add_argument("--asgi-processes", type=int, default=1)
    parser.add_argument("--rate-limits", choices=["fail-open", "fail-closed", "off"], default="fail-open",
                        help="rate limiting during the drill (fail-open is the production default)")
    parser.add_argument("--verbose", action="store_true", help="print the stack's logs")
    parser.add_argument("--json", default=str(BASE_DIR / "bench" / "results" / "faults.json"))
    return parser.parse_args()


def drill_environment(args: argparse.Namespace, pg: PrivatePostgres, redis: PrivateRedis) -> dict[str, str]:
    return {
        "DATABASE_URL": pg.url(), "REDIS_URL": redis.url, "SECRET_KEY": SECRET_KEY, "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false", "SUSPICION_WINDOW_POINTS": "0",
        # Counted in Redis like production, with budgets no player reaches: what matters is what a Redis outage
        # does to them (fail-open: requests pass; fail-closed: 503 with Retry-After).
        "RATE_LIMITS_ENABLED": "false" if args.rate_limits == "off" else "true",
        "RATE_LIMIT_FAIL_OPEN": "false" if args.rate_limits == "fail-closed" else "true",
        "RATE_LIMIT_START_ACTION": "100000/m", "RATE_LIMIT_COMPLETE_ACTION": "100000/m",
        "SUSPICION_MIN_DURATION_STREAK": "0", "MAX_CONNECTIONS_PER_IP": "1000000", "LIVE_RESYNC_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
    }


def seed(players: int, viewers: int) -> tuple[list[str], list[str]]:
    """Migrate, create the drill's action type, players and viewers; return the players' and viewers' tokens."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from rest_framework_simplejwt.tokens import AccessToken

    from scores.models import ActionType

    call_command("migrate", verbosity=0)
    ActionType.objects.create(code="drill", name="Drill", points=7, min_duration_seconds=0, max_duration_seconds=3600)
    User = get_user_model()

    def tokens(prefix: str, count: int) -> list[str]:
        users = [User.objects.create_user(username=f"{prefix}{index}", password=None) for index in range(count)]
        return [str(AccessToken.for_user(user)) for user in users]

    result = tokens("drill", players), tokens("viewer", viewers)
    connections.close_all()  # the drill's own connection must not sit through the restarts
    return result


def main() -> None:
    args = parse_args()
    pg, redis = PrivatePostgres(), PrivateRedis()
    stack = None
    try:
        print(f"Private PostgreSQL on 127.0.0.1:{pg.port} ({pg.dir}), Redis on 127.0.0.1:{redis.port}", flush=True)
        pg.init()
        redis.start()
        env = drill_environment(args, pg, redis)
        os.environ.update(env)
        tokens, viewer_tokens = seed(args.workers, args.viewers)
        stack = Stack(mode=args.mode, wsgi_workers=args.wsgi_workers, asgi_processes=args.asgi_processes,
                      env=env, collectstatic=False)
        stack.start()
        print(f"Stack ({args.mode}) on {stack.url}; {args.workers} players, {args.viewers} viewers", flush=True)
        record, viewers, faults, board = asyncio.run(drive(stack, pg, redis, tokens, viewer_tokens, args.settle))
        if args.verbose:
            print(stack.output(tail=6000))
        stack.stop()
        stack.cleanup()
        stack = None
        passed = check_and_report(args, env, record, faults, board)
        if not passed:
            print(f"--- postgres log ---\n{pg.log_tail()}")
            sys.exit(1)
    finally:
        if stack is not None:
            print(stack.output())
            stack.stop()
            stack.cleanup()
        redis.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
