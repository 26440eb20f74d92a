from django.apps import AppConfig


class ScoresConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scores"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from scores.anticheat import forget_multipliers
        from scores.models import MultiplierEvent

        # The per-process multiplier cache (scores.anticheat.multiplier_for) forgets an event edited here at once.
        post_save.connect(forget_multipliers, sender=MultiplierEvent, dispatch_uid="forget_multipliers_save")
        post_delete.connect(forget_multipliers, sender=MultiplierEvent, dispatch_uid="forget_multipliers_delete")
