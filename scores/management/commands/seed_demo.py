from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from scores import services
from scores.models import ActionType

User = get_user_model()

DEMO_PASSWORD = "scoreboard-demo"

ACTION_TYPES = [
    # code, name, points, min seconds, max seconds
    ("tap", "Quick tap", 5, 0, 60),
    ("quiz", "Quiz round", 20, 3, 300),
    ("game-round", "Game round", 50, 10, 900),
    ("daily-task", "Daily task", 100, 30, 86400),
]

# username, number of quick taps completed
DEMO_PLAYERS = [
    ("alice", 24), ("bob", 19), ("carol", 17), ("dave", 12), ("erin", 11), ("frank", 9),
    ("grace", 7), ("heidi", 6), ("ivan", 4), ("judy", 3), ("mallory", 2), ("niaj", 1),
]


class Command(BaseCommand):
    help = "Create demo action types and players with scores (idempotent; refuses when DEBUG is off)."

    def add_arguments(self, parser):  # noqa: ANN001
        parser.add_argument("--force", action="store_true", help="Seed even when DEBUG is off.")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        if not settings.DEBUG and not options["force"]:
            raise CommandError("Refusing to create demo users with a known password while DEBUG is off.")
        for code, name, points, min_s, max_s in ACTION_TYPES:
            ActionType.objects.get_or_create(
                code=code,
                defaults={"name": name, "points": points, "min_duration_seconds": min_s, "max_duration_seconds": max_s},
            )
        created = [self._seed_player(username, taps) for username, taps in DEMO_PLAYERS]
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
        self.stdout.write(
            f"Demo data ready: {sum(created)} new players; every demo account (and 'admin') uses the password "
            f"'{DEMO_PASSWORD}'."
        )

    def _seed_player(self, username: str, taps: int) -> bool:
        if User.objects.filter(username=username).exists():
            return False
        user = User.objects.create_user(username=username, password=DEMO_PASSWORD)
        for _ in range(taps):
            action = services.start_action(user=user, action_type_code="tap")
            services.complete_action(user=user, action_id=action.pk)
        return True
