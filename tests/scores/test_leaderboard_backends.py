"""Both backends give the same boards: a hypothesis property test drives score changes through the write path.

The changes happen inside the test's transaction; their on_commit write-through is run by
django_capture_on_commit_callbacks, and every Redis read and rebuild uses this same connection, so both backends
see the same rows. The clock (Django's timezone.now) is the one fake: drawn from a few instants around a Sunday
midnight so that ties in score *and* in time are common and changes fall on both sides of a day and an ISO week.
"""

import os
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from scores import services
from scores.leaderboard import database, periods, redis_board, redis_rebuild, redis_record
from scores.models import ActionType

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", "/tmp/hypothesis-scoreboard")

pytestmark = [pytest.mark.django_db, pytest.mark.redis, pytest.mark.postgres]

User = get_user_model()

SUNDAY_NIGHT = datetime(2026, 3, 1, 23, 59, 58, tzinfo=timezone.utc)
INSTANTS = [SUNDAY_NIGHT + timedelta(seconds=step) for step in range(4)]
WINDOWS = [periods.containing("all-time", SUNDAY_NIGHT)] + [
    periods.containing(period, instant) for period in ("daily", "weekly") for instant in (INSTANTS[0], INSTANTS[-1])
]
POINTS = {"one": 1, "two": 2, "three": 3}


class _Rollback(Exception):
    pass


def _clear_redis() -> None:
    client = redis_board.connection().client
    keys = list(client.scan_iter(match=f"{redis_board.prefix()}:*"))
    if keys:
        client.delete(*keys)


def _assert_backends_agree(users: list) -> None:
    for window in WINDOWS:
        size = database.ranked_rows(window).count()
        for limit in (1, 2, size + 1):
            assert redis_board.top(window, limit).as_json() == database.top(window, limit).as_json(), window.key
        for user in users:
            assert redis_board.rank_of(window, user.pk) == database.rank_of(window, user.pk), window.key
            for limit in (1, 2, 3):
                mine, theirs = redis_board.around(window, user.pk, limit), database.around(window, user.pk, limit)
                assert mine.as_json() == theirs.as_json(), (window.key, limit)
        user_ids = [user.pk for user in users]
        assert redis_board.ranks_of(window, user_ids) == database.ranks_of(window, user_ids), window.key
        assert redis_rebuild.drift(window) == []


change = st.tuples(st.just("score"), st.integers(0, 3), st.sampled_from(sorted(POINTS)), st.integers(0, 3))
rebuild = st.tuples(st.just("rebuild"), st.integers(0, len(WINDOWS) - 1), st.just(""), st.just(0))


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(operations=st.lists(st.one_of(change, change, change, rebuild), min_size=1, max_size=18))
def test_redis_and_database_boards_agree(operations, settings, django_capture_on_commit_callbacks):
    settings.LEADERBOARD_BACKEND = "redis"
    _clear_redis()
    try:
        with transaction.atomic():
            for code, points in POINTS.items():
                ActionType.objects.create(code=code, name=code, points=points, min_duration_seconds=0)
            users = [User.objects.create_user(username=f"player{index}") for index in range(4)]
            for window in WINDOWS:
                redis_rebuild.rebuild(window)
            for kind, target, code, instant in operations:
                if kind == "rebuild":
                    redis_rebuild.rebuild(WINDOWS[target])
                    continue
                with mock.patch("django.utils.timezone.now", return_value=INSTANTS[instant]):
                    with django_capture_on_commit_callbacks(execute=True):
                        action = services.start_action(user=users[target], action_type_code=code)
                        services.complete_action(user=users[target], action_id=action.pk)
            _assert_backends_agree(users)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        _clear_redis()


def test_an_older_write_arriving_late_changes_nothing(alice, quick_type, settings, django_capture_on_commit_callbacks):
    settings.LEADERBOARD_BACKEND = "redis"
    window = periods.current("all-time")
    with django_capture_on_commit_callbacks(execute=True):
        _complete(alice)
    redis_rebuild.rebuild(window)
    try:
        with transaction.atomic():
            with django_capture_on_commit_callbacks(execute=True):
                _complete(alice)
            assert redis_board.top(window, 1).entries[0].score == 20
            raise _Rollback
    except _Rollback:
        pass
    # The database is back at the older state (10 points, older version): a write carrying it is stale.
    redis_record.record(alice.pk, periods.all_containing(datetime.now(timezone.utc)))
    assert redis_board.top(window, 1).entries[0].score == 20


def test_the_same_write_applied_twice_counts_once(alice, quick_type, settings, django_capture_on_commit_callbacks):
    settings.LEADERBOARD_BACKEND = "redis"
    window = periods.current("all-time")
    redis_rebuild.rebuild(window)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _complete(alice)
    for callback in callbacks:
        callback()
    assert redis_board.top(window, 5).as_json() == database.top(window, 5).as_json()
    assert redis_board.top(window, 5).entries[0].score == 10


def test_scores_beyond_double_precision_are_refused_not_misranked():
    with pytest.raises(OverflowError):
        redis_board.exact_score(2**53 + 1)
    assert redis_board.exact_score(2**53) == 2**53


def test_member_encoding_sorts_descending_in_board_order():
    import uuid

    early, late = SUNDAY_NIGHT, SUNDAY_NIGHT + timedelta(microseconds=1)
    low, high = uuid.UUID(int=1), uuid.UUID(int=2**127)
    ordered = [(early, low), (early, high), (late, low), (late, high)]
    members = [redis_board.member(when, who) for when, who in ordered]
    assert members == sorted(members, reverse=True)


def _complete(user) -> None:
    action = services.start_action(user=user, action_type_code="quick")
    services.complete_action(user=user, action_id=action.pk)
