from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from scores import leaderboard
from scores.leaderboard import periods, redis_rebuild


class Command(BaseCommand):
    help = (
        "Compare every current Redis board with the database and report drift (exit code 1 if any). A board that "
        "is not built is reported but is not drift: readers get it from the database until it is rebuilt."
    )

    def add_arguments(self, parser):  # noqa: ANN001
        parser.add_argument("--period", choices=leaderboard.PERIODS, help="Only this period's current board.")
        parser.add_argument("--max-lines", type=int, default=20, help="Differences printed per board.")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        if settings.LEADERBOARD_BACKEND != "redis":
            self.stdout.write("The database backend reads the tables directly: there is nothing to drift.")
            return
        drifted = 0
        for period in [options["period"]] if options["period"] else leaderboard.PERIODS:
            window = periods.current(period)
            try:
                problems = redis_rebuild.drift(window)
            except RedisError as exc:
                raise CommandError(f"Redis is unreachable: {exc}") from exc
            if problems is None:
                self.stdout.write(f"{window.key}: not built in Redis (answered from the database until rebuilt)")
            elif problems:
                drifted += 1
                self.stderr.write(f"{window.key}: {len(problems)} difference(s)")
                for problem in problems[: options["max_lines"]]:
                    self.stderr.write(f"  {problem}")
            else:
                self.stdout.write(f"{window.key}: Redis matches the database")
        if drifted:
            raise CommandError(f"{drifted} board(s) drifted from the database; run `manage.py rebuild_leaderboard`.")
        self.stdout.write(self.style.SUCCESS("OK: no drift."))
