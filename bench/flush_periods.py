"""Flush read cost (not a test): what reading the boards costs one live-push flush, all-time only vs all periods.

    DATABASE_URL=postgres://127.0.0.1:5432/scoreboard_bench_i3b REDIS_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/flush_periods.py [--users 5000]

The database in DATABASE_URL must be named scoreboard_bench* and is migrated and filled if empty (drop it after);
Redis keys go under the prefix "scoreboard-bench-flush" and are deleted at the end.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")
os.environ["REDIS_KEY_PREFIX"] = "scoreboard-bench-flush"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    if not urlsplit(os.environ.get("DATABASE_URL", "")).path.strip("/").startswith("scoreboard_bench"):
        sys.exit("DATABASE_URL must name a scoreboard_bench* database")

    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import User
    from scores import broadcast, leaderboard
    from scores.models import ScoreEvent

    call_command("migrate", verbosity=0)
    if not User.objects.exists():
        now = timezone.now()
        users = [User(username=f"u{i}", score=i % 997 * 10, score_updated_at=now - timedelta(seconds=i))
                 for i in range(args.users)]
        User.objects.bulk_create(users, batch_size=2000)
        ScoreEvent.objects.bulk_create(
            [ScoreEvent(user=user, delta=user.score, resulting_total=user.score, reason="action_completed",
                        created_at=now - timedelta(seconds=i)) for i, user in enumerate(users)],
            batch_size=2000,
        )
    users = User.objects.count()
    try:
        for backend in ("database", "redis") if settings.REDIS_URL else ("database",):
            settings.LEADERBOARD_BACKEND = backend
            leaderboard.rebuild()
            for label, read in (("all-time only (before)", broadcast.current_board),
                                ("all three periods (now)", broadcast.current_boards)):
                read()
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    read()
                    times.append((time.perf_counter() - started) * 1000)
                print(f"{backend:9s} {label:24s} median {statistics.median(times):7.2f} ms  "
                      f"max {max(times):7.2f} ms  ({users} users)")
    finally:
        if settings.REDIS_URL:
            client = redis.Redis.from_url(settings.REDIS_URL)
            keys = list(client.scan_iter(match="scoreboard-bench-flush*", count=1000))
            if keys:
                client.delete(*keys)


if __name__ == "__main__":
    main()
