import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from scores import leaderboard


class Command(BaseCommand):
    help = (
        "Rebuild the Redis boards (all-time, today, this ISO week) from the database. Each board is loaded under "
        "a temporary key and swapped in atomically, so readers never see an empty or half board."
    )

    def add_arguments(self, parser):  # noqa: ANN001
        parser.add_argument("--period", choices=leaderboard.PERIODS, help="Only this period's current board.")
        parser.add_argument("--wait", type=float, default=60.0, help="Seconds to wait for a rebuild already running.")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        if settings.LEADERBOARD_BACKEND != "redis":
            self.stdout.write("The database backend reads the tables directly: nothing to rebuild.")
            return
        started = time.monotonic()
        try:
            sizes = leaderboard.rebuild(options["period"], wait=options["wait"])
        except RedisError as exc:
            raise CommandError(f"Redis is unreachable: {exc}") from exc
        busy = [key for key, size in sizes.items() if size is None]
        for key, size in sizes.items():
            self.stdout.write(f"{key}: {'still being rebuilt by another process' if size is None else f'{size} users'}")
        if busy:
            raise CommandError(f"Gave up waiting for the rebuild of {', '.join(busy)}.")
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {len(sizes)} board(s) in {time.monotonic() - started:.2f} s."))
