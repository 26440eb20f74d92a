"""The board's order and its periods, through the API, on whichever backend the test run selects for it."""

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model

from scores import leaderboard, services
from scores.leaderboard import periods
from scores.models import ScoreEvent

pytestmark = pytest.mark.django_db

User = get_user_model()


def _complete(user, code: str = "quick", times: int = 1) -> None:
    for _ in range(times):
        action = services.start_action(user=user, action_type_code=code)
        services.complete_action(user=user, action_id=action.pk)


def _names(body: dict) -> list[tuple[str, int]]:
    return [(row["username"], row["score"]) for row in body["data"]]


def test_ties_rank_who_reached_the_score_first_then_user_id(make_user, quick_type):
    first, second = make_user("first"), make_user("second")
    _complete(first)
    _complete(second)
    same_instant = User.objects.get(pk=first.pk).score_updated_at
    User.objects.filter(pk=second.pk).update(score_updated_at=same_instant - timedelta(seconds=1))
    assert [e.username for e in leaderboard.top(10).entries] == ["second", "first"]

    User.objects.filter(pk__in=[first.pk, second.pk]).update(score_updated_at=same_instant)
    by_id = sorted([first, second], key=lambda user: user.pk)
    assert [e.username for e in leaderboard.top(10).entries] == [user.username for user in by_id]
    assert [leaderboard.rank_of(user) for user in by_id] == [1, 2]


def test_period_boards_sum_only_the_window(anon, alice, bob, make_user, quick_type):
    carol = make_user("carol")
    _complete(alice, times=3)  # 30 all-time
    _complete(bob, times=2)  # 20
    _complete(carol, times=1)  # 10
    now = datetime.now(timezone.utc)
    week = periods.containing("weekly", now)
    # Two of alice's rows happened before this ISO week; one of bob's yesterday, which on a Monday is last week.
    old = ScoreEvent.objects.filter(user=alice).order_by("id")[:2].values_list("id", flat=True)
    ScoreEvent.objects.filter(id__in=list(old)).update(created_at=week.start - timedelta(seconds=1))
    yesterday = periods.containing("daily", now).start - timedelta(hours=1)
    bob_row = ScoreEvent.objects.filter(user=bob).order_by("id").first()
    ScoreEvent.objects.filter(pk=bob_row.pk).update(created_at=yesterday)

    all_time = anon.get("/api/v1/leaderboard").json()
    weekly = anon.get("/api/v1/leaderboard?period=weekly").json()
    daily = anon.get("/api/v1/leaderboard?period=daily").json()

    assert _names(all_time) == [("alice", 30), ("bob", 20), ("carol", 10)]
    assert (all_time["period"], weekly["period"], daily["period"]) == ("all-time", "weekly", "daily")
    expected_week = {"alice": 10, "bob": 20 if yesterday >= week.start else 10, "carol": 10}
    assert dict(_names(weekly)) == expected_week
    assert dict(_names(daily)) == {"alice": 10, "bob": 10, "carol": 10}


def test_period_order_breaks_ties_by_latest_row_in_window(anon, alice, bob, quick_type):
    _complete(bob)
    _complete(alice)
    # Same daily score; alice's row is made the earlier one, so she reached 10 first today.
    bob_row = ScoreEvent.objects.get(user=bob)
    ScoreEvent.objects.filter(user=alice).update(created_at=bob_row.created_at - timedelta(microseconds=1))
    assert _names(anon.get("/api/v1/leaderboard?period=daily").json()) == [("alice", 10), ("bob", 10)]


def test_user_without_rows_in_the_period_is_not_on_it(as_alice, alice, quick_type):
    _complete(alice)
    ScoreEvent.objects.filter(user=alice).update(
        created_at=periods.containing("weekly", datetime.now(timezone.utc)).start - timedelta(days=1)
    )
    body = as_alice.get("/api/v1/users/me").json()
    assert body["rank"] == 1
    assert body["ranks"] == {"all-time": 1, "weekly": None, "daily": None}
    around = as_alice.get("/api/v1/leaderboard?around=me&period=weekly").json()
    assert around["data"] == []


def test_me_reports_rank_per_period(as_bob, alice, bob, quick_type, slow_type):
    _complete(alice, times=2)
    _complete(bob, times=1)
    body = as_bob.get("/api/v1/users/me").json()
    assert body["rank"] == 2
    assert body["ranks"] == {"all-time": 2, "weekly": 2, "daily": 2}


def test_around_me_in_a_period(as_alice, make_user, alice, quick_type):
    players = [make_user(f"p{index}") for index in range(6)]
    for index, player in enumerate(players):
        _complete(player, times=index + 1)
    _complete(alice, times=3)
    body = as_alice.get("/api/v1/leaderboard?around=me&limit=3&period=weekly").json()
    names = [row["username"] for row in body["data"]]
    assert "alice" in names and len(names) == 3
    assert names.index("alice") == 1


@pytest.mark.parametrize("query", ["period=monthly", "period=ALL-TIME", "period=week", "period=daily&limit=0"])
def test_bad_period_or_limit_is_a_400_in_the_error_shape(anon, query):
    response = anon.get(f"/api/v1/leaderboard?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert set(body["error"]["details"]) <= {"period", "limit"}


def test_unknown_period_in_code_raises_value_error(db):
    with pytest.raises(ValueError):
        leaderboard.top(10, period="monthly")


def test_iso_week_and_utc_day_windows():
    sunday_night = datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone.utc)
    assert periods.containing("daily", sunday_night).key == "daily:2026-03-01"
    assert periods.containing("weekly", sunday_night).key == "weekly:2026-W09"
    monday = sunday_night + timedelta(seconds=1)
    assert periods.containing("weekly", monday).key == "weekly:2026-W10"
    assert periods.containing("weekly", monday).start == monday
    # The first ISO week of 2027 starts on Monday 4 January; 1-3 January belong to 2026-W53.
    assert periods.containing("weekly", datetime(2027, 1, 3, tzinfo=timezone.utc)).key == "weekly:2026-W53"


def test_banned_players_leave_every_period_board(anon, alice, bob, quick_type):
    from accounts.services import ban_user

    _complete(alice, times=2)
    _complete(bob)
    ban_user(user_id=alice.pk)
    for period in leaderboard.PERIODS:
        assert _names(anon.get(f"/api/v1/leaderboard?period={period}").json()) == [("bob", 10)]
        assert leaderboard.rank_of(alice, period=period) is None
