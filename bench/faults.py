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
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

sys.path.insert(0, str(BASE_DIR / "bench"))

from deploy.stack import Stack  # noqa: E402
from deploy.throwaway import PrivatePostgres, PrivateRedis  # noqa: E402
from drill_load import CLIENT_TIMEOUT, Record, Viewer, player, ready_watch, viewer  # noqa: E402

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


def ledger_check(record: Record) -> dict:
    from django.db.models import Count

    from scores.models import Action, ScoreEvent

    completed = ScoreEvent.objects.filter(reason=ScoreEvent.Reason.ACTION_COMPLETED)
    acked = list(record.acknowledged)
    paid = dict(completed.filter(action_id__in=acked).values_list("action_id").annotate(n=Count("id")))
    paid = {str(key): value for key, value in paid.items()}
    statuses = dict(Action.objects.filter(pk__in=acked).values_list("pk", "status"))
    statuses = {str(key): value for key, value in statuses.items()}
    missing = [action for action in acked if paid.get(action, 0) == 0 or statuses.get(action) != "completed"]
    doubles = completed.values("action_id").annotate(n=Count("id")).filter(n__gt=1).count()
    total_paid = completed.aggregate(total=Count("id"))["total"]
    return {
        "acknowledged": len(acked),
        "acknowledged_missing": len(missing),
        "double_awards": doubles,
        "completions_in_ledger": total_paid,
        "committed_not_acknowledged": total_paid - len(acked),
        "of_which_a_retry_saw_completed": len(record.completed_on_retry),
    }


def manage(command: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "manage.py", command], cwd=BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"exit_code": done.returncode, "last_line": lines[-1] if lines else ""}


def final_board() -> list[tuple[str, int]]:
    from django.db import connections

    from scores import leaderboard

    try:
        return [(entry.user_id, entry.score) for entry in leaderboard.top(10).entries]
    finally:
        connections.close_all()


async def final_board_check(viewers: list[Viewer], limit: float = 20) -> dict:
    """After the load stops: seconds until every viewer shows the final top 10 (the relays' idle resync repairs
    a broadcast lost to an outage within LIVE_RESYNC_SECONDS)."""
    if not viewers:
        return {}
    final = await asyncio.to_thread(final_board)
    began = time.monotonic()

    def current() -> int:
        return sum(1 for state in viewers if state.last is not None and
                   [(row["userId"], row["score"]) for row in state.last["payload"]] == final)

    while current() < len(viewers) and time.monotonic() - began < limit:
        await asyncio.sleep(0.1)
    errors = sum((state.errors for state in viewers), Counter())
    return {"viewers": len(viewers), "with_final_board": current(),
            "seconds_until_all_had_it": round(time.monotonic() - began, 2) if current() == len(viewers) else None,
            "reconnects": sum(v.reconnects for v in viewers), "disconnect_reasons": dict(errors.most_common(5))}


def report(record: Record, faults: dict, ledger: dict, checks: dict, board: dict, config: dict) -> dict:
    phases = list(record.statuses)
    print("\nFault drill (production stack, private PostgreSQL and Redis; shared 2-core box, figures are noisy)")
    print(f"  {config}\n")
    for name, fault in faults.items():
        recover = fault["recover_seconds"]
        print(f"  {name:<28} dependency away {fault['down_seconds']:>6.2f} s; recovered after it was back: "
              f"completions {recover['completions']} s, /readyz {recover['readyz']} s")
    print("\n  responses per phase (status: count), slowest response")
    for phase in phases:
        counts = ", ".join(f"{status}: {count}" for status, count in sorted(record.statuses[phase].items()))
        print(f"  {phase:<28} {counts}   slowest {record.slowest[phase]:.2f} s")
    total = sum((record.statuses[phase] for phase in phases), Counter())
    print(f"\n  all phases: {dict(sorted(total.items()))}")
    print(f"  500s: {total.get('500', 0)}; 502/504 from nginx: {total.get('502', 0) + total.get('504', 0)}; "
          f"timeouts (> {CLIENT_TIMEOUT:.0f} s): {total.get('timeout', 0)}; 503 without Retry-After: "
          f"{record.missing_retry_after}; non-JSON errors: {record.not_json}")
    print(f"  ledger: {ledger}")
    print(f"  verify_scores: {checks['verify_scores']}; check_leaderboard: {checks['check_leaderboard']}")
    print(f"  live viewers: {board}")
    passed = (total.get("500", 0) == 0 and total.get("timeout", 0) == 0 and record.missing_retry_after == 0
              and ledger["acknowledged_missing"] == 0 and ledger["double_awards"] == 0
              and all(check["exit_code"] == 0 for check in checks.values()))
    print(f"\n  RESULT: {'PASS' if passed else 'FAIL'}\n")
    return {"faults": faults, "statuses": {phase: dict(record.statuses[phase]) for phase in phases},
            "slowest_seconds": {phase: round(record.slowest[phase], 3) for phase in phases},
            "totals": dict(total), "missing_retry_after": record.missing_retry_after, "non_json_errors": record.not_json,
            "ledger": ledger, "checks": checks, "viewers": board, "passed": passed}


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


def check_and_report(args: argparse.Namespace, env: dict[str, str], record: Record, faults: dict, board: dict) -> bool:
    """The ledger and integrity checks after the drill, printed and written as JSON; whether the drill passed."""
    from django.db import connections

    connections.close_all()
    ledger = ledger_check(record)
    full_env = {**os.environ, **env}
    checks = {"verify_scores": manage("verify_scores", full_env),
              "check_leaderboard": manage("check_leaderboard", full_env)}
    config = {"mode": args.mode, "rate_limits": args.rate_limits, "workers": args.workers,
              "viewers": args.viewers, "wsgi_workers": args.wsgi_workers, "asgi_processes": args.asgi_processes}
    result = report(record, faults, ledger, checks, board, config)
    result["config"] = config
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON written to {args.json}")
    return result["passed"]


if __name__ == "__main__":
    main()
