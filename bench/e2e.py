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
5. completions: the started actions are completed as fast as C keep-alive connections allow: completions/s and
   p50/p95/p99 of the complete call, while the viewers receive the boards: delivery latency from the ledger row's
   timestamp to receipt (p50/p99/max over a sample of the completions that put their payer in the top 10, the ones
   that change the board), messages per viewer, viewers whose last board
   differs from the final one;
6. cycle: start-then-complete loops: full cycles/s;
7. integrity: verify_scores (ledger equals totals, each action paid at most once), every acknowledged completion
   paid exactly once, check_leaderboard (Redis board equals the database).
Prints one table and writes bench/results/e2e-<timestamp>.json (and e2e-latest.json).
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
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from deploy.stack import Stack  # noqa: E402
from cpu_split import CpuSplit, describe, per_operation_ms  # noqa: E402
from fanout import forget_redis_keys, recreate_database  # noqa: E402
from http_load import Http, hammer, ms, pct  # noqa: E402
from ws_viewer import Received, ViewerProcess, board_rows, board_spreads, delivery_latencies  # noqa: E402

BENCH_PREFIX = "scoreboard-e2e"
RESULTS = BASE_DIR / "bench" / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="5,000 viewers, longer phases")
    parser.add_argument("--modes", default="split,daphne", help="layouts to run, comma-separated: split, daphne")
    parser.add_argument("--viewers", type=int, default=None)
    parser.add_argument("--users", type=int, default=500, help="players starting and completing actions")
    parser.add_argument("--connections", type=int, default=48, help="concurrent keep-alive HTTP connections")
    parser.add_argument("--seconds", type=float, default=None, help="length of each timed phase")
    parser.add_argument("--actions", type=int, default=None, help="actions started, then completed")
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
            and args.actions <= 200000 and 1 <= args.connections <= 512):
        parser.error("out of the bounded range")
    return args


# --- A minimal HTTP/1.1 keep-alive client ---------------------------------------------------------------------


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


def ledger_rows() -> dict[str, tuple[int, float]]:
    from scores.models import ScoreEvent

    return {str(action_id): (version, created.timestamp())
            for version, action_id, created in ScoreEvent.objects.values_list("id", "action_id", "created_at")}


def integrity(stack_env: dict[str, str], acknowledged: list[str]) -> dict:
    """verify_scores, check_leaderboard, and every acknowledged completion paid exactly once."""
    from django.db import connection
    from django.db.models import Count

    from scores.models import ScoreEvent

    result = {}
    for command in ("verify_scores", "check_leaderboard"):
        run = subprocess.run([sys.executable, "manage.py", command], cwd=BASE_DIR, env=stack_env,
                             capture_output=True, text=True, timeout=300)
        result[command] = {"exit": run.returncode, "output": (run.stdout + run.stderr).strip()[-400:]}
    paid = dict(ScoreEvent.objects.filter(action_id__isnull=False).values("action_id")
                .annotate(n=Count("id")).values_list("action_id", "n"))
    paid = {str(action_id): count for action_id, count in paid.items()}
    result["acknowledged_completions"] = len(acknowledged)
    result["acknowledged_missing_from_ledger"] = sum(1 for action_id in acknowledged if action_id not in paid)
    result["actions_paid_more_than_once"] = sum(1 for count in paid.values() if count > 1)
    connection.close()
    result["clean"] = (all(result[c]["exit"] == 0 for c in ("verify_scores", "check_leaderboard"))
                       and result["acknowledged_missing_from_ledger"] == 0 and result["actions_paid_more_than_once"] == 0)
    return result


# --- Viewers -----------------------------------------------------------------------------------------------------


def delivery(viewers: list[Received], completions: list[tuple[int, float, float]], final_rows: list) -> dict:
    """`completions`: (version, ledger timestamp, time the client got the 200). The commit lies between the two: the
    ledger timestamp is taken inside the transaction (an upper bound for the latency), the 200 comes after the
    commit (a lower bound; it can even be negative when the board beat the response)."""
    sample = random.Random(7).sample(completions, min(len(completions), 200))
    latencies, undelivered = delivery_latencies(viewers, [(version, ledger) for version, ledger, _ in sample])
    after_ack, _ = delivery_latencies(viewers, [(version, acked) for version, _, acked in sample])
    missing_final = 0
    for viewer in viewers:
        if board_rows(viewer.last_board) != final_rows:
            missing_final += 1
    per_viewer = [len(viewer.received) for viewer in viewers] or [0]
    spreads = board_spreads(viewers)
    return {"board_spread_p50_ms": ms(pct(spreads, 0.5)), "board_spread_max_ms": ms(max(spreads) if spreads else None),
            "viewers": len(viewers), "p50_ms": ms(pct(latencies, 0.5)), "p99_ms": ms(pct(latencies, 0.99)),
            "max_ms": ms(max(latencies) if latencies else None), "samples": len(latencies),
            "from_acknowledgement_p50_ms": ms(pct(after_ack, 0.5)), "from_acknowledgement_p99_ms": ms(pct(after_ack, 0.99)),
            "messages_per_viewer": round(statistics.mean(per_viewer), 1), "missing_final_board": missing_final,
            "sample_completions_never_delivered": undelivered,
            "closed_by_server": sum(1 for viewer in viewers if viewer.closed)}


# --- One layout ----------------------------------------------------------------------------------------------------


async def run_mode(mode: str, args: argparse.Namespace, tokens: list[str], stack_env: dict[str, str]) -> dict:
    if mode == "split":
        stack = Stack(mode="split", wsgi_workers=args.wsgi_workers, wsgi_threads=args.wsgi_threads,
                      asgi_processes=args.asgi_processes, env=stack_env)
        layout = f"nginx + gunicorn x{args.wsgi_workers}" + (f" ({args.wsgi_threads} threads)" if args.wsgi_threads > 1
                                                            else " (sync)") + f" + daphne x{args.asgi_processes}"
    else:
        stack = Stack(mode="daphne", asgi_processes=args.daphne_processes, env=stack_env)
        layout = f"nginx + daphne x{args.daphne_processes}"
    print(f"\n=== {mode}: {layout}", flush=True)
    await asyncio.to_thread(stack.start)
    result: dict = {"mode": mode, "layout": layout}
    viewers = ViewerProcess([0], 0)
    try:
        port = stack.port
        result["ceiling_healthz"] = await hammer(port, args.connections, args.seconds,
                                                 lambda c, i: _status(c.request("GET", "/healthz")))
        print(f"ceiling GET /healthz: {result['ceiling_healthz']['per_second']}/s", flush=True)
        result["get_leaderboard"] = await hammer(port, args.connections, args.seconds,
                                                 lambda c, i: _status(c.request("GET", "/api/v1/leaderboard")))
        print(f"GET /api/v1/leaderboard: {result['get_leaderboard']['per_second']}/s", flush=True)

        began = time.monotonic()
        viewers = ViewerProcess([port], args.viewers)
        connected = await viewers.start()
        result["viewers_connect_seconds"] = round(time.monotonic() - began, 1)
        print(f"{connected} viewers connected in {result['viewers_connect_seconds']} s", flush=True)

        # Starts: spread the actions over the users; each connection owns a slice of users.
        started: list[tuple[str, str]] = []  # (token, action id)
        plan = [tokens[i % len(tokens)] for i in range(args.actions)]

        async def start_one(client: Http, index: int) -> int | None:
            if not plan:
                return None
            token = plan.pop()
            status, body = await client.request("POST", "/api/v1/users/me/actions", token, b'{"actionType": "tap"}')
            if status == 201:
                started.append((token, json.loads(body)["actionId"]))
            return status

        result["starts"] = await hammer(port, args.connections, args.seconds * 4, start_one)
        print(f"starts: {result['starts']['per_second']}/s ({len(started)} started)", flush=True)

        await viewers.clear()
        acknowledged: list[str] = []
        acknowledged_at: dict[str, float] = {}
        in_top_ten: set[str] = set()  # completions whose payer ranked 1-10 after it: each one changed the board

        async def complete(client: Http, token: str, action_id: str) -> int:
            status, body = await client.request("PUT", f"/api/v1/users/me/actions/{action_id}", token,
                                                b'{"status": "completed"}')
            if status == 200:
                acknowledged.append(action_id)
                acknowledged_at[action_id] = time.time()
                rank = json.loads(body)["rank"]
                if rank is not None and rank <= 10:
                    in_top_ten.add(action_id)
            return status
        queue = list(started)
        random.Random(1).shuffle(queue)

        async def complete_one(client: Http, index: int) -> int | None:
            if not queue:
                return None
            token, action_id = queue.pop()
            return await complete(client, token, action_id)

        lag_before = await broadcast_lag_buckets(port)
        server = stack.pids()
        split = CpuSplit({**server, "viewers": [viewers.process.pid] if viewers.process.pid else []})
        profiler = _start_profiler(stack, mode) if args.profile else None
        result["completions"] = await hammer(port, args.connections, args.seconds * 3, complete_one)
        if profiler is not None:
            profiler.wait(timeout=60)
        spent, idle_percent = split.seconds()
        result["completions"]["server_cpu_seconds"] = round(sum(spent[party] for party in server), 1)
        result["completions"]["cpu_ms_per_completion"] = per_operation_ms(spent, idle_percent,
                                                                          result["completions"]["requests"])
        result["completions"]["broadcast_lag_ms"] = lag_percentiles(lag_before, await broadcast_lag_buckets(port))
        print(f"completions: {result['completions']['per_second']}/s p50 {result['completions']['p50_ms']} ms "
              f"p95 {result['completions']['p95_ms']} ms p99 {result['completions']['p99_ms']} ms; broadcast lag "
              f"(first commit of a window to group_send, from /metrics buckets) {result['completions']['broadcast_lag_ms']}",
              flush=True)
        print(describe(result["completions"]["cpu_ms_per_completion"]), flush=True)

        async def cycle_one(client: Http, index: int) -> int | None:
            token = tokens[index % len(tokens)]
            status, body = await client.request("POST", "/api/v1/users/me/actions", token, b'{"actionType": "tap"}')
            if status != 201:
                return status
            action_id = json.loads(body)["actionId"]
            return await complete(client, token, action_id)

        result["cycles"] = await hammer(port, min(args.connections, len(tokens)), args.seconds, cycle_one)
        print(f"start+complete cycles: {result['cycles']['per_second']}/s", flush=True)

        # Let the last broadcast land, then compare each viewer's last board with the final board.
        rows = await asyncio.to_thread(ledger_rows)
        # Only a change that reaches the top 10 is broadcast; a change outside it shows up in the next board that
        # some other change triggers, which can be seconds later between phases, so it is not a delivery sample.
        completions = [(*rows[action_id], acknowledged_at[action_id]) for action_id in acknowledged
                       if action_id in rows and action_id in in_top_ten]
        final_rows: list = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            status, body = await Http(port).request("GET", "/api/v1/leaderboard")
            final_rows = [(r["userId"], r["score"]) for r in json.loads(body)["data"]]
            if await viewers.behind(final_rows) == 0:
                break
        result["delivery"] = delivery(await viewers.report(), completions, final_rows)
        print(f"delivery to {result['delivery']['viewers']} viewers: p50 {result['delivery']['p50_ms']} ms p99 "
              f"{result['delivery']['p99_ms']} ms max {result['delivery']['max_ms']} ms from the ledger timestamp, "
              f"p50 {result['delivery']['from_acknowledgement_p50_ms']} ms p99 "
              f"{result['delivery']['from_acknowledgement_p99_ms']} ms from the client's 200 (one board, first to last "
              f"viewer: p50 {result['delivery']['board_spread_p50_ms']} ms), "
              f"missing final board: {result['delivery']['missing_final_board']}", flush=True)
        result["integrity"] = await asyncio.to_thread(integrity, stack_env, acknowledged)
        print(f"integrity: {'clean' if result['integrity']['clean'] else 'NOT CLEAN'} "
              f"({ {k: v for k, v in result['integrity'].items() if k not in ('verify_scores', 'check_leaderboard')} })",
              flush=True)
    finally:
        await viewers.stop()
        result["stop_exit_codes"] = await asyncio.to_thread(stack.stop)
        stack.cleanup()
    return result


async def broadcast_lag_buckets(port: int) -> dict[float, float]:
    """The cumulative buckets of scoreboard_broadcast_lag_seconds from /metrics (loopback is an internal network)."""
    status, body = await Http(port).request("GET", "/metrics")
    buckets: dict[float, float] = {}
    for line in body.decode().splitlines() if status == 200 else []:
        if line.startswith("scoreboard_broadcast_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def lag_percentiles(before: dict[float, float], after: dict[float, float]) -> dict:
    """p50/p99 of the flushes between the two readings, as the upper bound of their histogram bucket."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return {"flushes": 0}

    def bound_of(q: float) -> float | None:
        bound = next(bound for bound, count in counts.items() if count >= q * total)
        return None if bound == float("inf") else round(bound * 1000)

    return {"flushes": int(total), "p50_at_most": bound_of(0.5), "p99_at_most": bound_of(0.99)}


async def _status(awaitable) -> int:
    status, _ = await awaitable
    return status


def _start_profiler(stack: Stack, mode: str) -> subprocess.Popen | None:
    pid = stack.gunicorn.pid if mode == "split" else stack.daphnes[0].pid
    out = RESULTS / f"profile-{mode}.svg"
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy not installed (pip install py-spy); no profile", file=sys.stderr)
        return None
    return subprocess.Popen([str(spy), "record", "--subprocesses", "--pid", str(pid), "--duration", "8",
                             "--rate", "200", "--format", "raw", "--output", str(out.with_suffix(".txt")), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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
    os.environ.update({
        "SECRET_KEY": base64.b64encode(os.urandom(48)).decode(), "REDIS_KEY_PREFIX": BENCH_PREFIX,
        "ACCESS_TOKEN_LIFETIME_SECONDS": "7200",
    })
    stack_env = {
        "DEBUG": "false", "SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING", "LIVE_ALLOW_ANONYMOUS": "true",
        # The bench's users are not abusers: lift issue 5's limits (rate limits, open-action cap, per-IP sockets).
        "RATE_LIMITS_ENABLED": "false", "MAX_OPEN_ACTIONS_PER_USER": "100000", "MAX_CONNECTIONS_PER_IP": "1000000",
        "SUSPICION_MIN_DURATION_STREAK": "0", "SUSPICION_WINDOW_POINTS": "0",
    }
    os.environ.update(stack_env)
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
    record = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": round(time.monotonic() - began),
        "machine": {"cores": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "note": "server, PostgreSQL, Redis and the load generator share these cores"},
        "args": {k: v for k, v in vars(args).items()}, "results": results,
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"e2e-{stamp}.json", RESULTS / "e2e-latest.json"):
        path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: bench/results/e2e-{stamp}.json ({record['seconds']} s)")


if __name__ == "__main__":
    main()
