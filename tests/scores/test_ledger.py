"""scores.ledger on whichever database the pass runs (SQLite in the embedded pass, PostgreSQL in the other)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from scores import ledger
from scores.leaderboard import periods
from scores.models import ScoreEvent

pytestmark = pytest.mark.django_db


def _change(user, delta: int, at, windows) -> tuple[int, dict]:
    with transaction.atomic():
        change = ledger.change_score(
            user_id=user.pk, delta=delta, reason=ScoreEvent.Reason.ACTION_COMPLETED, multiplier=Decimal(1), at=at,
            windows=windows,
        )
        return change.event_id, change.period_totals


def test_append_returns_the_period_totals_with_the_new_row_and_only_the_windows_rows(alice, bob):
    now = timezone.now()
    daily, weekly = periods.containing(periods.DAILY, now), periods.containing(periods.WEEKLY, now)
    _change(alice, 100, daily.start - timedelta(days=8), [])  # before this week: in no period total
    _change(alice, 5, daily.start - timedelta(seconds=1) if daily.start > weekly.start else daily.start, [])
    _change(bob, 1000, now, [])  # another user's rows never count
    earlier = now - timedelta(microseconds=1) if now - timedelta(microseconds=1) >= daily.start else now
    _change(alice, 3, earlier, [])

    event_id, totals = _change(alice, 2, now, [daily, weekly])

    in_day = sum(e.delta for e in ScoreEvent.objects.filter(user=alice, created_at__gte=daily.start))
    in_week = sum(e.delta for e in ScoreEvent.objects.filter(user=alice, created_at__gte=weekly.start))
    assert totals == {daily.key: (in_day, now), weekly.key: (in_week, now)}
    assert ScoreEvent.objects.get(pk=event_id).resulting_total == 110
    alice.refresh_from_db()
    assert alice.score == 110


def test_append_without_windows_returns_no_totals(alice):
    event_id, totals = _change(alice, 4, timezone.now(), [])
    assert totals == {} and ScoreEvent.objects.get(pk=event_id).delta == 4
