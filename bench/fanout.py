"""Fan-out benchmark (not a test): V viewers on real WebSockets while completions flow through the HTTP API.

    DATABASE_URL=postgres://127.0.0.1:5432/scoreboard_bench_i6 REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/fanout.py [--viewers 1000 | --large] [--layer pubsub|core] [--servers 2]

The database named in DATABASE_URL is dropped and recreated (it must not be one you care about). Everything runs
on loopback; the run is bounded by --seconds of completions plus at most --settle seconds of waiting.

Latency is measured per completion and per viewer: from the completion's ledger timestamp (taken inside the
transaction, a few ms before the commit, so the figure is slightly pessimistic) to the moment the viewer's socket
delivered the first board whose version includes it. It therefore includes the coalescing window.
"""

import argparse
import asyncio
import base64
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_PREFIX = "scoreboard-bench"
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import httpx  # noqa: E402
import logging  # noqa: E402
import psycopg  # noqa: E402

from tests.live_servers import Daphne  # noqa: E402
from ws_viewer import Viewer, board_spreads, connect_viewers, delivery_latencies  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--large", action="store_true", help="5,000 viewers")
    parser.add_argument("--layer", choices=["pubsub", "core"], default="pubsub")
    parser.add_argument("--servers", type=int, default=2, help="daphne processes (viewers spread over them)")
    parser.add_argument("--players", type=int, default=8, help="players completing actions (all in the top 10)")
    parser.add_argument("--rate", type=float, default=20, help="completions per second, all players together")
    parser.add_argument("--seconds", type=float, default=15, help="how long completions keep flowing")
    parser.add_argument("--settle", type=float, default=10, help="longest wait for the final board afterwards")
    parser.add_argument("--window-ms", type=int, default=100, help="LIVE_COALESCE_MS for the servers")
    parser.add_argument("--client-nice", type=int, default=10, help="niceness of this load generator (0 to 19)")
    args = parser.parse_args()
    if args.large:
        args.viewers = 5000
    if not (1 <= args.viewers <= 20000 and 1 <= args.servers <= 8 and args.seconds <= 120 and args.rate <= 500
            and 0 <= args.client_nice <= 19):
        parser.error("out of the bounded range")
    return args


# --- Setup -------------------------------------------------------------------------------------------------------


def recreate_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith(("scoreboard_bench", "bench_")):
        sys.exit("Refusing: the bench database name must start with scoreboard_bench or bench_ (it is dropped).")
    admin_url = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare(players: int) -> list[str]:
    """Migrate, create the action type and the players; return the players' access tokens."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from scores.models import ActionType

    call_command("migrate", verbosity=0)
    ActionType.objects.create(code="tap", name="Tap", points=1, min_duration_seconds=0, max_duration_seconds=3600)
    users = [get_user_model().objects.create_user(f"player{i}", password="bench-password-1") for i in range(players)]
    return [str(AccessToken.for_user(user)) for user in users]


def ledger() -> dict[str, tuple[int, float]]:
    """action id -> (version, ledger timestamp) for every completion."""
    from scores.models import ScoreEvent

    return {str(action_id): (version, created.timestamp())
            for version, action_id, created in ScoreEvent.objects.values_list("id", "action_id", "created_at")}


# --- Completions ---------------------------------------------------------------------------------------------------


async def complete_loop(server: Daphne, token: str, interval: float, until: float, done: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        next_at = time.monotonic() + random.random() * interval
        while time.monotonic() < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            started = await client.post("/api/v1/users/me/actions", json={"actionType": "tap"})
            if started.status_code != 201:
                raise RuntimeError(f"start failed: {started.status_code} {started.text[:300]}")
            action_id = started.json()["actionId"]
            finished = await client.put(f"/api/v1/users/me/actions/{action_id}", json={"status": "completed"})
            if finished.status_code == 200:
                done.append(action_id)


async def run(args: argparse.Namespace, tokens: list[str]) -> None:
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"], "CHANNEL_LAYER": args.layer,
        "LIVE_ALLOW_ANONYMOUS": "true", "LIVE_COALESCE_MS": str(args.window_ms), "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING",
        # Every viewer comes from 127.0.0.1 and 8 players complete fast: lift the abuse limits for the bench.
        "MAX_CONNECTIONS_PER_IP": "1000000", "RATE_LIMITS_ENABLED": "false",
        "SUSPICION_MIN_DURATION_STREAK": "0", "SUSPICION_WINDOW_POINTS": "0",
    }
    servers = [Daphne(env) for _ in range(args.servers)]
    try:
        for server in servers:
            server.wait_ready()
        # The viewers stand in for thousands of other machines; on this box they share the server's two cores. At
        # a lower priority they read when the servers leave them a core: their receipt times come from the kernel
        # (bench/ws_viewer.py), so reading late does not change a figure, only the CPU they take from the servers.
        os.nice(args.client_nice)
        began = time.monotonic()
        viewers = await connect_viewers([server.port for server in servers], args.viewers)
        print(f"connected {len(viewers)} viewers to {args.servers} daphne process(es) in "
              f"{time.monotonic() - began:.1f} s ({args.layer} layer)")
        for viewer in viewers:
            viewer.received.clear()
        cpu_before = [cpu_seconds(server.process.pid) for server in servers]
        client_before = time.process_time()

        done: list[str] = []
        until = time.monotonic() + args.seconds
        interval = len(tokens) / args.rate
        await asyncio.gather(*(complete_loop(servers[index % len(servers)], token, interval, until, done)
                               for index, token in enumerate(tokens)))
        versions = await asyncio.to_thread(ledger)
        final = max(version for version, _ in versions.values())
        settle_until = time.monotonic() + args.settle
        while time.monotonic() < settle_until and any(v.received[-1][0] != final for v in viewers if v.received):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        report(args, viewers, [versions[action_id] for action_id in done if action_id in versions], final)
        server_cpu = sum(cpu_seconds(server.process.pid) for server in servers) - sum(cpu_before)
        delivered = sum(len(viewer.received) for viewer in viewers)
        print(f"CPU during the run: servers {server_cpu:.1f} s ({server_cpu / max(delivered, 1) * 1e6:.0f} us per "
              f"delivered message, HTTP completions included), load generator {time.process_time() - client_before:.1f} s")
        for viewer in viewers:
            viewer.close()
    finally:
        for server in servers:
            server.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(args: argparse.Namespace, viewers: list[Viewer], completions: list[tuple[int, float]], final: int) -> None:
    latencies, undelivered = delivery_latencies(viewers, completions)
    latencies.sort()
    spreads = board_spreads(viewers)
    missing_final = sum(1 for viewer in viewers if not viewer.received or viewer.received[-1][0] != final)
    closed = sum(1 for viewer in viewers if viewer.closed)
    per_viewer = [len(viewer.received) for viewer in viewers]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    print(f"viewers={len(viewers)} completions={len(completions)} in {args.seconds:.0f} s "
          f"({len(completions) / args.seconds:.1f}/s) window={args.window_ms} ms servers={args.servers}")
    if latencies:
        print(f"delivery latency commit->receipt: p50={pct(0.50):.0f} ms p99={pct(0.99):.0f} ms "
              f"max={latencies[-1] * 1000:.0f} ms  (samples={len(latencies)})")
    if spreads:
        print(f"one board, first to last viewer: p50={spreads[len(spreads) // 2] * 1000:.0f} ms "
              f"max={spreads[-1] * 1000:.0f} ms over {len(spreads)} boards")
    print(f"messages per viewer: mean={statistics.mean(per_viewer):.1f} min={min(per_viewer)} max={max(per_viewer)}")
    print(f"viewers missing the final board: {missing_final}; viewer-completions never delivered: {undelivered}; "
          f"sockets closed by the server: {closed}")


def main() -> None:
    args = parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.viewers + 1024)), hard))
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL (PostgreSQL, a throw-away database) and REDIS_URL.")
    os.environ["SECRET_KEY"] = base64.b64encode(os.urandom(48)).decode()  # shared: the servers check our tokens
    # Our own Redis key prefix (boards, coalescing, counters, layer), emptied first: the database is new too.
    os.environ["REDIS_KEY_PREFIX"] = BENCH_PREFIX
    forget_redis_keys()
    recreate_database(os.environ["DATABASE_URL"])
    tokens = prepare(args.players)
    try:
        asyncio.run(run(args, tokens))
    finally:
        forget_redis_keys()


def forget_redis_keys(prefix: str = BENCH_PREFIX) -> None:
    """Delete the bench's Redis keys (everything under `prefix`, never anything else) in REDIS_URL."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)


if __name__ == "__main__":
    main()
