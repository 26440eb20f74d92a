"""Benchmark (not a test): the database and Redis leaderboard backends side by side at growing sizes.

    .venv/bin/python bench/leaderboard.py                  # 10k and 100k users
    .venv/bin/python bench/leaderboard.py --large          # also 1M users
    .venv/bin/python bench/leaderboard.py --sizes 5000 --seconds 1

For each size it bulk-loads users (and one ledger row each, spread over the last 6 days so the daily and weekly
boards are partial) into a dedicated PostgreSQL database it creates and drops (bench_scoreboard_i3 by default),
then measures, in this one process on loopback:
  - GET /api/v1/leaderboard (top 10, the full Django/DRF view) per second,
  - a user's all-time rank (leaderboard.rank_of) per second, for random users,
  - on Redis, the rebuild time of every board (all-time, today, this week) from the database.
The Redis keys live under their own prefix in the given Redis database and are deleted at the end.
"""

import argparse
import os
import random
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="Comma-separated user counts.")
    parser.add_argument("--large", action="store_true", help="Add the 1,000,000-user size.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Duration of each throughput measurement.")
    parser.add_argument("--postgres", default="postgres://127.0.0.1:5432", help="PostgreSQL server URL (no database).")
    parser.add_argument("--database", default="bench_scoreboard_i3", help="Scratch database, created and dropped.")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3", help="Redis for the Redis backend.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database afterwards.")
    return parser.parse_args()


def recreate_database(args: argparse.Namespace) -> None:
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        admin.execute(f'CREATE DATABASE "{args.database}"')


def drop_database(args: argparse.Namespace) -> None:
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def setup_django(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "scoreboard_project.settings"
    os.environ["DATABASE_URL"] = f"{args.postgres}/{args.database}"
    os.environ.pop("REDIS_URL", None)
    os.environ["LEADERBOARD_BACKEND"] = "database"
    os.environ["LEADERBOARD_REDIS_URL"] = args.redis_url
    os.environ["LEADERBOARD_KEY_PREFIX"] = "bench-i3:lb"
    os.environ["DEBUG"] = "true"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_users(count: int) -> float:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE scores_scoreevent, accounts_user CASCADE")
        cursor.execute(
            """
            INSERT INTO accounts_user (id, password, is_superuser, username, first_name, last_name, email,
                                       is_staff, is_active, date_joined, is_banned, score, score_updated_at)
            SELECT gen_random_uuid(), '!', false, 'user' || i, '', '', '', false, true, now(), false,
                   (random() * 1000)::bigint, now() - random() * interval '6 days'
            FROM generate_series(1, %s) AS i
            """,
            [count],
        )
        cursor.execute(
            """
            INSERT INTO scores_scoreevent (user_id, action_id, delta, resulting_total, reason, multiplier, created_at)
            SELECT id, NULL, score, score, 'action_completed', 1, score_updated_at FROM accounts_user
            """
        )
        cursor.execute("ANALYZE accounts_user")
        cursor.execute("ANALYZE scores_scoreevent")
    return time.monotonic() - started


def per_second(seconds: float, call) -> float:
    done, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        call()
        done += 1
    return done / elapsed


def measure(backend: str, seconds: float, sample: list) -> dict:
    from django.test import Client, override_settings

    from scores import leaderboard
    from scores.leaderboard import redis_rebuild

    result = {}
    with override_settings(LEADERBOARD_BACKEND=backend):
        if backend == "redis":
            started = time.monotonic()
            sizes = leaderboard.rebuild("all-time", wait=120)
            result["rebuild_all_time"] = time.monotonic() - started
            sizes.update(leaderboard.rebuild("weekly", wait=120))
            sizes.update(leaderboard.rebuild("daily", wait=120))
            result["rebuild"] = time.monotonic() - started
            result["boards"] = sizes
            redis_rebuild.wait_for_background_rebuilds()
        client = Client(HTTP_HOST="127.0.0.1")
        assert client.get("/api/v1/leaderboard").status_code == 200
        result["top"] = per_second(seconds, lambda: client.get("/api/v1/leaderboard"))
        result["rank"] = per_second(seconds, lambda: leaderboard.rank_of(random.choice(sample)))
    return result


def clear_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match="bench-i3:lb:*", count=1000))
    if keys:
        client.delete(*keys)


def main() -> None:
    args = parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    if args.large:
        sizes.append(1_000_000)
    recreate_database(args)
    rows = []
    try:
        setup_django(args)
        from django.contrib.auth import get_user_model

        for size in sizes:
            load = load_users(size)
            sample = list(get_user_model().objects.order_by("?").only("id")[:1000])
            clear_redis(args.redis_url)
            db, rd = measure("database", args.seconds, sample), measure("redis", args.seconds, sample)
            rows.append((size, load, db, rd))
            print(f"  measured {size:,} users (loaded in {load:.1f} s; boards {rd['boards']})", flush=True)
    finally:
        clear_redis(args.redis_url)
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(args)
    print_table(rows, args.seconds)


def print_table(rows: list, seconds: float) -> None:
    print()
    print(f"Leaderboard backends, {seconds:g} s per figure, one process on loopback (machine shared: ±30% noise)")
    print(f"{'users':>10} | {'GET top-10/s DB':>16} {'Redis':>8} | {'rank/s DB':>10} {'Redis':>8} | {'rebuild all-time':>16} {'+ week + day':>12}")
    print("-" * 96)
    for size, _, db, rd in rows:
        print(
            f"{size:>10,} | {db['top']:>16,.0f} {rd['top']:>8,.0f} | {db['rank']:>10,.0f} {rd['rank']:>8,.0f} | "
            f"{rd['rebuild_all_time']:>14.2f} s {rd['rebuild']:>10.2f} s"
        )


if __name__ == "__main__":
    main()
