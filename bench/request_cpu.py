"""CPU per request in one process (not a test): what a request costs Python itself, without the noise of a loaded box.

    DATABASE_URL=postgres://127.0.0.1:5432/bench_request_cpu REDIS_URL=redis://127.0.0.1:6379/15 \
        .venv/bin/python bench/request_cpu.py [--requests 2000] [--profile]

Django's test client drives the whole middleware stack (no server, no sockets to the client) against the real
PostgreSQL and Redis, one request at a time, and prints the CPU time per request (of this process, its PostgreSQL backend and the Redis server) for a bare Django view
(GET /healthz), the board (GET /api/v1/leaderboard) and a completion (PUT /api/v1/users/me/actions/<id>). The
end-to-end benchmark (bench/e2e.py) can then be read against it: on 2 cores, completions/s can never exceed
2 s / (this CPU + PostgreSQL's + Redis's + nginx's + the load generator's per completion).
`--profile` prints cProfile's top functions of the completions by CPU time (profiling roughly doubles their cost).
The database named in DATABASE_URL is dropped and recreated (bench_* / scoreboard_bench* only); Redis keys live
under their own prefix, deleted before and after. Bounded: --requests of each kind, at most 20,000.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from fanout import cpu_seconds, forget_redis_keys, recreate_database  # noqa: E402

BENCH_PREFIX = "scoreboard-request-cpu"
PLAYERS = 200


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests of each kind (100-20000)")
    parser.add_argument("--profile", action="store_true", help="cProfile the completions")
    args = parser.parse_args()
    if not 100 <= args.requests <= 20_000:
        parser.error("--requests must be between 100 and 20000")
    return args


def configure() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("Set DATABASE_URL (PostgreSQL, a throw-away bench_* database) and REDIS_URL.")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "scoreboard_project.settings", "DEBUG": "false", "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "testserver", "SECRET_KEY": os.urandom(32).hex(), "LOG_LEVEL": "WARNING",
        "REDIS_KEY_PREFIX": BENCH_PREFIX, "DB_CONN_MAX_AGE": "600",
        # As in the production stack under gunicorn; the bench's players are not abusers (as bench/e2e.py).
        "RATE_LIMITS_ENABLED": "false", "MAX_OPEN_ACTIONS_PER_USER": "100000",
        "SUSPICION_MIN_DURATION_STREAK": "0", "SUSPICION_WINDOW_POINTS": "0",
    })


def prepare() -> list[str]:
    """Migrate, create the zero-duration action type and the players; return their access tokens."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from scores.models import ActionType

    call_command("migrate", verbosity=0)
    ActionType.objects.create(code="tap", name="Tap", points=1, min_duration_seconds=0, max_duration_seconds=3600)
    User = get_user_model()
    User.objects.bulk_create([User(username=f"player{i}", password="!") for i in range(PLAYERS)])
    return [str(AccessToken.for_user(user)) for user in User.objects.order_by("username")]


def server_pids() -> dict[str, int]:
    """This process's PostgreSQL backend and the Redis server (both local: their CPU is in /proc)."""
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    return {"postgresql": backend, "redis": redis.Redis.from_url(os.environ["REDIS_URL"]).info("server")["process_id"]}


def cpu_ms_per_call(calls: list, profile: bool = False) -> dict[str, float]:
    """CPU ms per call: this process (Python), its PostgreSQL backend, the Redis server."""
    pids = server_pids()
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall: waits on servers cost no CPU
    began = {"python": time.process_time(), **{name: cpu_seconds(pid) for name, pid in pids.items()}}
    if profiler:
        profiler.enable()
    for call in calls:
        call()
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
    ended = {"python": time.process_time(), **{name: cpu_seconds(pid) for name, pid in pids.items()}}
    if server_pids()["postgresql"] != pids["postgresql"]:
        sys.exit("The database connection was replaced during the run: its backend's CPU is unknown.")
    return {name: round(1000 * (ended[name] - began[name]) / len(calls), 3) for name in began}


def main() -> None:
    args = parse_args()
    configure()
    recreate_database(os.environ["DATABASE_URL"])
    forget_redis_keys(BENCH_PREFIX)
    try:
        tokens = prepare()
        from django.test import Client

        client = Client()

        def expect(response, status: int):
            if response.status_code != status:
                sys.exit(f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']}: "
                         f"{response.status_code} {response.content[:200]!r}")
            return response

        def start(token: str) -> tuple[str, str]:
            response = expect(client.post("/api/v1/users/me/actions", b'{"actionType": "tap"}',
                                          content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"), 201)
            return token, response.json()["actionId"]

        def completion(token: str, action_id: str):
            return lambda: expect(client.put(f"/api/v1/users/me/actions/{action_id}", b'{"status": "completed"}',
                                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"),
                                  200)

        warm_up = [completion(*start(token)) for token in tokens]
        cpu_ms_per_call(warm_up)  # connections, caches, the Redis board's first build
        started = [start(tokens[index % PLAYERS]) for index in range(args.requests)]
        figures = {
            "GET /healthz": cpu_ms_per_call([lambda: expect(client.get("/healthz"), 200)] * args.requests),
            "GET /api/v1/leaderboard": cpu_ms_per_call(
                [lambda: expect(client.get("/api/v1/leaderboard"), 200)] * args.requests),
            "PUT complete": cpu_ms_per_call([completion(*pair) for pair in started], args.profile),
        }
        print(f"\nCPU ms per request, one at a time ({args.requests} each, PostgreSQL and Redis on loopback):")
        print(f"  {'request':<26} {'python':>8} {'postgres':>9} {'redis':>7} {'total':>7}")
        for name, cpu in figures.items():
            print(f"  {name:<26} {cpu['python']:8.3f} {cpu['postgresql']:9.3f} {cpu['redis']:7.3f} "
                  f"{sum(cpu.values()):7.3f}")
    finally:
        forget_redis_keys(BENCH_PREFIX)


if __name__ == "__main__":
    main()
