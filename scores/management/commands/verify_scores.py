from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from scores.integrity import find_problems

User = get_user_model()


class Command(BaseCommand):
    help = "Prove the ledger: every total equals the sum of its ledger rows and every action is paid at most once."

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        problems = find_problems()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} integrity problem(s) found.")
        self.stdout.write(self.style.SUCCESS(f"OK: {User.objects.count()} users, ledger and totals agree."))
