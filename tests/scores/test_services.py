from datetime import timedelta

import pytest
from django.utils import timezone

from scores import services
from scores.exceptions import ActionNotFound, ActionNotStarted, ActionTooFast, NotYourAction, UnknownActionType
from scores.integrity import find_problems
from scores.models import Action, ScoreEvent
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db


def _age(action: Action, seconds: float) -> None:
    Action.objects.filter(pk=action.pk).update(started_at=timezone.now() - timedelta(seconds=seconds))


def test_complete_pays_type_points_and_appends_ledger(alice, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=action.pk)

    alice.refresh_from_db()
    assert alice.score == 10
    assert alice.score_updated_at is not None
    event = ScoreEvent.objects.get(user=alice)
    assert (event.delta, event.resulting_total, event.action_id, event.reason) == (10, 10, action.pk, "action_completed")
    assert find_problems() == []


def test_complete_twice_pays_once(alice, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=action.pk)
    with pytest.raises(ActionNotStarted):
        services.complete_action(user=alice, action_id=action.pk)
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.count() == 1


def test_too_fast_leaves_action_started(alice, slow_type):
    action = services.start_action(user=alice, action_type_code="slow")
    with pytest.raises(ActionTooFast):
        services.complete_action(user=alice, action_id=action.pk)
    action.refresh_from_db()
    assert action.status == "started"
    assert ScoreEvent.objects.count() == 0


def test_overdue_action_is_marked_expired_and_pays_nothing(alice, slow_type):
    action = services.start_action(user=alice, action_type_code="slow")
    _age(action, 601)
    with pytest.raises(ActionNotStarted) as raised:
        services.complete_action(user=alice, action_id=action.pk)
    assert raised.value.details == {"status": "expired"}
    action.refresh_from_db()
    assert action.status == "expired"
    alice.refresh_from_db()
    assert alice.score == 0


def test_other_user_cannot_complete(alice, bob, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")
    with pytest.raises(NotYourAction):
        services.complete_action(user=bob, action_id=action.pk)
    action.refresh_from_db()
    assert action.status == "started"


def test_unknown_and_inactive_types_refused(alice, quick_type):
    quick_type.is_active = False
    quick_type.save()
    for code in ("quick", "nope"):
        with pytest.raises(UnknownActionType):
            services.start_action(user=alice, action_type_code=code)
    assert Action.objects.count() == 0


def test_unknown_action_id(alice):
    for bad in ("not-a-uuid", "6a14f332-bd94-4ea3-b8e2-6b3ad5aa099a"):
        with pytest.raises(ActionNotFound):
            services.complete_action(user=alice, action_id=bad)


def test_cancel_pays_nothing_and_cannot_complete_after(alice, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")
    services.cancel_action(user=alice, action_id=action.pk)
    with pytest.raises(ActionNotStarted):
        services.complete_action(user=alice, action_id=action.pk)
    alice.refresh_from_db()
    assert (alice.score, Action.objects.get().status) == (0, "cancelled")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_completions_pay_once(alice, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")

    def complete(_: int) -> str:
        try:
            services.complete_action(user=alice, action_id=action.pk)
            return "paid"
        except ActionNotStarted:
            return "refused"

    outcomes = run_at_once(complete, 20)

    assert sorted(outcomes) == ["paid"] + ["refused"] * 19
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.filter(action=action).count() == 1
    assert find_problems() == []
