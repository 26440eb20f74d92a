from django.conf import settings
from django.core.management.base import BaseCommand

from integrations import idempotency


class Command(BaseCommand):
    help = "Delete idempotency records older than IDEMPOTENCY_KEY_TTL_HOURS (at least 24 h). Run it daily."

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        deleted = idempotency.purge_expired()
        self.stdout.write(f"Deleted {deleted} idempotency record(s) older than {settings.IDEMPOTENCY_KEY_TTL_HOURS} h.")
