"""Integrity checks over the ledger, used by `manage.py verify_scores`, the tests and the benchmarks."""

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from scores.models import Action, ScoreEvent

User = get_user_model()


def find_problems() -> list[str]:
    """Human-readable descriptions of every disagreement between totals, ledger and actions; empty when clean."""
    return _totals_off_ledger() + _actions_paid_wrongly()


def _totals_off_ledger() -> list[str]:
    users = User.objects.annotate(ledger_sum=Coalesce(Sum("score_events__delta"), 0)).exclude(score=F("ledger_sum"))
    return [
        f"user {user.username} ({user.pk}): score {user.score} but ledger sums to {user.ledger_sum}"
        for user in users.only("id", "username", "score")
    ]


def _actions_paid_wrongly() -> list[str]:
    payments = Count("score_events", filter=Q(score_events__reason=ScoreEvent.Reason.ACTION_COMPLETED))
    paid = Coalesce(Sum("score_events__delta", filter=Q(score_events__reason=ScoreEvent.Reason.ACTION_COMPLETED)), 0)
    net = Coalesce(Sum("score_events__delta"), 0)
    actions = Action.objects.annotate(payments=payments, paid=paid, net=net)
    completed_wrong = actions.filter(status=Action.Status.COMPLETED).exclude(
        payments=1, paid=F("points_awarded"), net=F("points_awarded")
    )
    # A voided action was paid once and reversed once: its ledger rows cancel out.
    voided_wrong = actions.filter(status=Action.Status.VOIDED).exclude(payments=1, paid=F("points_awarded"), net=0)
    unpaid_wrong = actions.exclude(status__in=[Action.Status.COMPLETED, Action.Status.VOIDED]).exclude(net=0, payments=0)
    return [
        f"action {action.pk} ({action.status}): {action.payments} payment(s) totalling {action.paid}, "
        f"net {action.net}, points_awarded {action.points_awarded}"
        for action in (*completed_wrong, *voided_wrong, *unpaid_wrong)
    ]
