from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from scores import services
from scores.exceptions import DailyCapReached, TooManyOpenActions
from scores.integrity import find_problems
from scores.models import Action, ActionType, MultiplierEvent, ScoreEvent, SuspicionFlag
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db


def _complete_new(user, code: str = "quick") -> Action:
    action = services.start_action(user=user, action_type_code=code)
    return services.complete_action(user=user, action_id=action.pk)


# --- open actions -------------------------------------------------------------------------------------


def test_fourth_open_action_is_refused(alice, quick_type):
    for _ in range(3):
        services.start_action(user=alice, action_type_code="quick")
    with pytest.raises(TooManyOpenActions) as raised:
        services.start_action(user=alice, action_type_code="quick")
    assert raised.value.details == {"limit": 3, "open": 3}
    assert Action.objects.filter(user=alice).count() == 3


def test_finishing_an_action_frees_a_slot(alice, quick_type):
    actions = [services.start_action(user=alice, action_type_code="quick") for _ in range(3)]
    services.cancel_action(user=alice, action_id=actions[0].pk)
    services.start_action(user=alice, action_type_code="quick")
    assert Action.objects.filter(user=alice, status="started").count() == 3


def test_overdue_actions_do_not_block_new_ones(alice, quick_type):
    for _ in range(3):
        services.start_action(user=alice, action_type_code="quick")
    Action.objects.update(started_at=timezone.now() - timedelta(hours=2))
    fresh = services.start_action(user=alice, action_type_code="quick")
    assert fresh.status == "started"
    assert Action.objects.filter(user=alice).count() == 4


def test_open_action_limit_is_configurable(settings, alice, quick_type):
    settings.MAX_OPEN_ACTIONS_PER_USER = 1
    services.start_action(user=alice, action_type_code="quick")
    with pytest.raises(TooManyOpenActions):
        services.start_action(user=alice, action_type_code="quick")


def test_open_action_limit_over_the_api_is_409(as_alice, quick_type):
    for _ in range(3):
        as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json")
    response = as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_many_open_actions"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_cannot_exceed_the_limit(alice, quick_type):
    def start(_: int) -> str:
        try:
            services.start_action(user=alice, action_type_code="quick")
            return "started"
        except TooManyOpenActions:
            return "refused"

    outcomes = run_at_once(start, 10)
    assert sorted(outcomes) == ["refused"] * 7 + ["started"] * 3
    assert Action.objects.filter(user=alice, status="started").count() == 3


# --- daily cap -----------------------------------------------------------------------------------------


def test_daily_cap_refuses_the_next_completion_and_the_next_start(alice, quick_type):
    ActionType.objects.filter(pk=quick_type.pk).update(daily_cap=2)
    _complete_new(alice)
    pending = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=pending.pk)
    with pytest.raises(DailyCapReached) as raised:
        services.start_action(user=alice, action_type_code="quick")
    assert raised.value.details["dailyCap"] == 2
    alice.refresh_from_db()
    assert alice.score == 20


def test_daily_cap_is_checked_again_at_completion(alice, quick_type):
    ActionType.objects.filter(pk=quick_type.pk).update(daily_cap=1)
    first = services.start_action(user=alice, action_type_code="quick")
    second = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=first.pk)
    with pytest.raises(DailyCapReached):
        services.complete_action(user=alice, action_id=second.pk)
    second.refresh_from_db()
    assert second.status == "started"
    assert ScoreEvent.objects.count() == 1


def test_daily_cap_counts_only_today(alice, quick_type):
    ActionType.objects.filter(pk=quick_type.pk).update(daily_cap=1)
    done = _complete_new(alice)
    Action.objects.filter(pk=done.pk).update(completed_at=timezone.now() - timedelta(days=1))
    _complete_new(alice)
    assert Action.objects.filter(status="completed").count() == 2


# --- multipliers ---------------------------------------------------------------------------------------


def test_multiplier_event_pays_more_and_the_ledger_records_it(alice, quick_type):
    now = timezone.now()
    MultiplierEvent.objects.create(
        action_type=quick_type, multiplier=Decimal("2"), starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    action = _complete_new(alice)
    assert action.points_awarded == 20
    event = ScoreEvent.objects.get(action=action)
    assert (event.delta, event.multiplier) == (20, Decimal("2.00"))
    alice.refresh_from_db()
    assert alice.score == 20
    assert find_problems() == []


def test_multiplier_outside_its_window_or_for_another_type_does_not_apply(alice, quick_type, slow_type):
    now = timezone.now()
    MultiplierEvent.objects.create(
        action_type=quick_type, multiplier=Decimal("3"), starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2)
    )
    MultiplierEvent.objects.create(
        action_type=slow_type, multiplier=Decimal("3"), starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=2)
    )
    action = _complete_new(alice)
    assert action.points_awarded == 10
    assert ScoreEvent.objects.get(action=action).multiplier == Decimal("1")


def test_fractional_multiplier_rounds_half_up(alice, quick_type):
    now = timezone.now()
    ActionType.objects.filter(pk=quick_type.pk).update(points=5)
    MultiplierEvent.objects.create(
        action_type=quick_type, multiplier=Decimal("1.5"), starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    assert _complete_new(alice).points_awarded == 8  # 7.5 -> 8


# --- suspicion flags -----------------------------------------------------------------------------------


def test_points_over_the_window_threshold_raise_one_flag(settings, alice, quick_type):
    settings.SUSPICION_WINDOW_POINTS = 25
    settings.MAX_OPEN_ACTIONS_PER_USER = 10
    for _ in range(2):
        _complete_new(alice)
    assert not SuspicionFlag.objects.exists()
    for _ in range(3):
        _complete_new(alice)
    flag = SuspicionFlag.objects.get()
    assert (flag.user, flag.reason, flag.resolved) == (alice, "points_in_window", False)
    assert flag.details == {"points": 30, "threshold": 25, "windowSeconds": 3600}
    alice.refresh_from_db()
    assert alice.score == 50  # flagged, not refused


def test_points_outside_the_window_do_not_count(settings, alice, quick_type):
    settings.SUSPICION_WINDOW_POINTS = 15
    _complete_new(alice)
    ScoreEvent.objects.update(created_at=timezone.now() - timedelta(hours=2))
    _complete_new(alice)
    assert not SuspicionFlag.objects.exists()


def _complete_at_minimum(user, code: str = "slow", extra_seconds: float = 0.2) -> Action:
    action = services.start_action(user=user, action_type_code=code)
    Action.objects.filter(pk=action.pk).update(started_at=timezone.now() - timedelta(seconds=60 + extra_seconds))
    return services.complete_action(user=user, action_id=action.pk)


def test_repeated_completions_at_the_minimum_duration_are_flagged(settings, alice, slow_type):
    settings.SUSPICION_MIN_DURATION_STREAK = 3
    for _ in range(2):
        _complete_at_minimum(alice)
    assert not SuspicionFlag.objects.exists()
    _complete_at_minimum(alice)
    _complete_at_minimum(alice)
    flag = SuspicionFlag.objects.get()
    assert flag.reason == "min_duration_streak"
    assert len(flag.details["actionIds"]) == 3


def test_a_human_pace_breaks_the_streak(settings, alice, slow_type):
    settings.SUSPICION_MIN_DURATION_STREAK = 3
    _complete_at_minimum(alice)
    _complete_at_minimum(alice, extra_seconds=20)
    _complete_at_minimum(alice)
    assert not SuspicionFlag.objects.exists()


def test_flags_are_listed_and_filtered_in_the_admin(client, admin_user, alice, settings, quick_type):
    settings.SUSPICION_WINDOW_POINTS = 5
    _complete_new(alice)
    client.force_login(admin_user)
    response = client.get("/admin/scores/suspicionflag/", {"reason__exact": "points_in_window", "resolved__exact": "0"})
    assert response.status_code == 200
    assert b"alice" in response.content
    assert client.get("/admin/scores/suspicionflag/", {"reason__exact": "min_duration_streak"}).content.count(b"alice") == 0


def test_server_awards_count_towards_points_but_not_pace(settings, alice, slow_type):
    settings.SUSPICION_MIN_DURATION_STREAK = 2
    settings.SUSPICION_WINDOW_POINTS = 120
    for _ in range(3):
        services.award_action_points(user_id=alice.pk, action_type_code="slow", source={"source": "api"})
    assert list(SuspicionFlag.objects.values_list("reason", flat=True)) == ["points_in_window"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_and_completions_of_one_user_never_deadlock(settings, alice, quick_type):
    settings.MAX_OPEN_ACTIONS_PER_USER = 50
    settings.SUSPICION_WINDOW_POINTS = 0
    ActionType.objects.filter(pk=quick_type.pk).update(daily_cap=8)
    pending = [services.start_action(user=alice, action_type_code="quick").pk for _ in range(10)]

    def work(index: int) -> bool:
        """True when this worker started an action; a deadlock or any other error fails the test."""
        try:
            if index % 2:
                services.start_action(user=alice, action_type_code="quick")
                return True
            services.complete_action(user=alice, action_id=pending[index // 2])
        except DailyCapReached:
            pass
        return False

    started = [index for index, did_start in enumerate(run_at_once(work, 20)) if did_start]
    alice.refresh_from_db()
    assert alice.score == 80  # the daily cap held under concurrency: 8 of 10 completions paid
    assert Action.objects.filter(user=alice).count() == 10 + len(started)
    assert find_problems() == []


def test_multiplier_lookup_is_cached_per_type_and_forgotten_when_an_event_is_saved(
    settings, alice, quick_type, django_assert_num_queries
):
    from scores.anticheat import multiplier_for

    settings.MULTIPLIER_CACHE_MS = 60_000
    now = timezone.now()
    assert multiplier_for(action_type=quick_type, now=now) == Decimal(1)
    with django_assert_num_queries(0):
        assert multiplier_for(action_type=quick_type, now=now) == Decimal(1)
    MultiplierEvent.objects.create(
        action_type=quick_type, multiplier=Decimal("2"), starts_at=now + timedelta(seconds=1), ends_at=now + timedelta(hours=1)
    )
    assert multiplier_for(action_type=quick_type, now=now) == Decimal(1)  # not running yet
    with django_assert_num_queries(0):  # the cached future event starts on time, without a query
        assert multiplier_for(action_type=quick_type, now=now + timedelta(seconds=2)) == Decimal(2)
    settings.MULTIPLIER_CACHE_MS = 0
    with django_assert_num_queries(1):
        assert multiplier_for(action_type=quick_type, now=now + timedelta(seconds=2)) == Decimal(2)
