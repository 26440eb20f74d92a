"""The Redis board on real PostgreSQL transactions: write-through after commit, rebuilds, drift, expiry."""

import threading
import time
from datetime import datetime, timezone

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from scores import leaderboard, services
from scores.leaderboard import database, periods, redis_board, redis_rebuild, redis_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]


def _complete(user, times: int = 1) -> None:
    for _ in range(times):
        action = services.start_action(user=user, action_type_code="quick")
        services.complete_action(user=user, action_id=action.pk)


def _players(make_user, count: int) -> list:
    # No password: hashing one costs ~0.2 s here, and these players never log in.
    players = [get_user_model().objects.create_user(f"player{index:03d}") for index in range(count)]
    for index, player in enumerate(players):
        _complete(player, times=1 + index % 4)
    return players


def _rebuilds(window) -> int:
    return int(redis_board.connection().client.hget(redis_board.stats_key(), f"rebuilds:{window.key}") or 0)


def test_completion_writes_through_to_every_period_board(as_alice, alice, bob, quick_type):
    leaderboard.rebuild()
    _complete(bob, times=2)
    action = as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json").json()
    response = as_alice.put(f"/api/v1/users/me/actions/{action['actionId']}", {"status": "completed"}, format="json")
    assert response.status_code == 200 and response.json()["rank"] == 2

    for period in leaderboard.PERIODS:
        window = periods.current(period)
        in_redis = redis_board.top(window, 10)
        assert [(e.username, e.score) for e in in_redis.entries] == [("bob", 20), ("alice", 10)]
        assert in_redis.as_json() == database.top(window, 10).as_json()
    assert as_alice.get("/api/v1/users/me").json()["ranks"] == {"all-time": 2, "weekly": 2, "daily": 2}


def test_nothing_reaches_redis_before_commit(alice, quick_type):
    leaderboard.rebuild()
    window = periods.current("all-time")
    from django.db import transaction

    with transaction.atomic():
        _complete(alice)
        assert redis_board.top(window, 10).entries == []
    assert [e.username for e in redis_board.top(window, 10).entries] == ["alice"]


def test_a_missing_board_is_rebuilt_once_for_a_crowd_and_reads_meanwhile_come_from_the_database(make_user, quick_type):
    _players(make_user, 30)
    window = periods.current("all-time")
    truth = database.top(window, 10).as_json()
    answers, errors = [], []

    def read() -> None:
        try:
            answers.append(Client().get("/api/v1/leaderboard").json())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    crowd = [threading.Thread(target=read) for _ in range(12)]
    for reader in crowd:
        reader.start()
    for reader in crowd:
        reader.join(30)
    redis_rebuild.wait_for_background_rebuilds()

    assert errors == []
    assert answers == [truth] * 12
    assert _rebuilds(window) == 1
    assert redis_board.top(window, 10).as_json() == truth


def test_rebuild_command_swaps_in_a_full_board_never_an_empty_one(make_user, quick_type):
    players = _players(make_user, 40)
    leaderboard.rebuild()
    window = periods.current("all-time")
    client = redis_board.connection().client
    sizes, stop = set(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            sizes.add(client.zcard(redis_board.Keys(window).zset))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(5):
            call_command("rebuild_leaderboard")
    finally:
        stop.set()
        watcher.join()
    assert sizes == {len(players)}


def test_score_changes_during_a_rebuild_are_not_lost(make_user, quick_type):
    players = _players(make_user, 60)
    leaderboard.rebuild()
    stop = threading.Event()

    def rebuild_repeatedly() -> None:
        try:
            while not stop.is_set():
                leaderboard.rebuild(wait=5)
        finally:
            connection.close()

    rebuilder = threading.Thread(target=rebuild_repeatedly)
    rebuilder.start()
    try:
        for player in players[:25]:
            _complete(player)
    finally:
        stop.set()
        rebuilder.join(30)
    for period in leaderboard.PERIODS:
        assert redis_rebuild.drift(periods.current(period)) == []


def test_a_rebuild_finishes_while_score_changes_keep_arriving(make_user, quick_type):
    players = _players(make_user, 20)
    leaderboard.rebuild()
    window = periods.current(leaderboard.ALL_TIME)
    rebuilt = threading.Event()

    def play(mine: list) -> None:
        # Completions never stop until the rebuild returns (or the deadline passes): it must not wait for quiet.
        try:
            while not rebuilt.is_set() and time.monotonic() < deadline:
                for player in mine:
                    _complete(player)
        finally:
            connection.close()

    deadline = time.monotonic() + 15
    writers = [threading.Thread(target=play, args=(players[index::4],)) for index in range(4)]
    for writer in writers:
        writer.start()
    redis_rebuild.rebuild(window, wait=5)
    rebuilt.set()
    assert time.monotonic() < deadline
    for writer in writers:
        writer.join(30)
    assert redis_rebuild.drift(window) == []


def test_check_leaderboard_reports_drift_and_rebuild_repairs_it(make_user, quick_type, capsys):
    players = _players(make_user, 5)
    leaderboard.rebuild()
    call_command("check_leaderboard")
    assert "OK: no drift" in capsys.readouterr().out

    window = periods.current("weekly")
    keys = redis_board.Keys(window)
    client = redis_board.connection().client
    victim = client.zrevrange(keys.zset, 0, 0)[0]
    client.zadd(keys.zset, {victim: 999})  # a stray writer corrupts the weekly board
    with pytest.raises(CommandError, match="drifted"):
        call_command("check_leaderboard")
    assert "Redis score 999" in capsys.readouterr().err

    call_command("rebuild_leaderboard", "--period", "weekly")
    call_command("check_leaderboard")
    assert len(players) == database.ranked_rows(window).count()


def test_check_leaderboard_exits_non_zero_on_drift(make_user, quick_type):
    import subprocess
    import sys

    _players(make_user, 3)
    leaderboard.rebuild()
    keys = redis_board.Keys(periods.current("all-time"))
    redis_board.connection().client.zrem(keys.zset, redis_board.connection().client.zrevrange(keys.zset, 0, 0)[0])
    from django.conf import settings

    env = {
        **__import__("os").environ,
        "DATABASE_URL": settings.DATABASE_URL.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"],
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check_leaderboard"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "missing from Redis" in result.stderr


def test_period_boards_expire_on_their_own_and_all_time_does_not(alice, quick_type):
    leaderboard.rebuild()
    _complete(alice)
    client = redis_board.connection().client
    now = time.time()
    for period, longest in (("daily", 86400 + 3600), ("weekly", 7 * 86400 + 3600)):
        keys = redis_board.Keys(periods.current(period))
        for key in (keys.zset, keys.users, keys.built):
            assert 0 < client.ttl(key) <= longest
        assert client.expiretime(keys.zset) == int(periods.current(period).expires_at(datetime.now(timezone.utc)).timestamp())
    all_time = redis_board.Keys(periods.current("all-time"))
    assert client.ttl(all_time.zset) == -1
    assert now > 0


def test_a_rebuilt_all_time_board_never_expires(make_user, quick_type):
    _players(make_user, 3)  # scored before the rebuild, so the rebuild loads them into its temporary keys
    leaderboard.rebuild()
    client = redis_board.connection().client
    all_time = redis_board.Keys(periods.current("all-time"))
    assert [client.ttl(key) for key in (all_time.zset, all_time.users, all_time.built)] == [-1, -1, -1]
    assert len(redis_board.top(periods.current("all-time"), 10).entries) == 3


def test_a_ban_takes_the_player_off_the_redis_boards_and_an_unban_brings_them_back(alice, bob, quick_type):
    from accounts.services import ban_user, unban_user

    leaderboard.rebuild()
    _complete(alice, times=2)
    _complete(bob)
    ban_user(user_id=alice.pk)
    for period in leaderboard.PERIODS:
        window = periods.current(period)
        assert [e.username for e in redis_board.top(window, 10).entries] == ["bob"]
        assert redis_board.rank_of(window, alice.pk) is None
        assert redis_rebuild.drift(window) == []
    unban_user(user_id=alice.pk)
    for period in leaderboard.PERIODS:
        window = periods.current(period)
        assert [e.username for e in redis_board.top(window, 10).entries] == ["alice", "bob"]
        assert redis_rebuild.drift(window) == []


def test_a_ban_committed_before_the_payments_board_write_is_not_undone_by_it(alice, bob, quick_type):
    from django.db import transaction

    from accounts.services import ban_user

    leaderboard.rebuild()
    _complete(bob)
    with transaction.atomic():
        # Runs after the payment commits and before the payment's own board write (callbacks run in order): the
        # ban's board write then carries the same ledger version as the payment's late one.
        transaction.on_commit(lambda: ban_user(user_id=alice.pk))
        _complete(alice, times=2)
    for period in leaderboard.PERIODS:
        window = periods.current(period)
        assert [e.username for e in redis_board.top(window, 10).entries] == ["bob"]
        assert redis_rebuild.drift(window) == []


def test_the_snapshot_read_in_the_change_transaction_equals_the_one_read_after_commit(alice, bob, quick_type):
    # The write path hands record() the totals its ledger insert read under the row lock (issue 7c); they must be
    # what the full snapshot query reads from the committed tables, for every period board.
    from django.db import transaction
    from django.utils import timezone

    from scores import ledger
    from scores.models import ScoreEvent

    _complete(bob, times=2)
    _complete(alice, times=3)
    now = timezone.now()
    with transaction.atomic():
        change = ledger.change_score(
            user_id=alice.pk, delta=7, reason=ScoreEvent.Reason.ACTION_COMPLETED, at=now,
            windows=leaderboard.windows_to_total(now),
        )
        in_transaction = leaderboard.snapshot_for_change(
            user_id=alice.pk, username=change.username, total=change.total, version=change.event_id, at=now,
            period_totals=change.period_totals,
        )
    windows = periods.all_containing(now)
    after_commit = redis_record._snapshot(alice.pk, windows)
    for key in ("id", "username", "is_banned", "version", "version_at", *[f"{k}_{i}" for k in ("score", "reached")
                                                                          for i in range(len(windows))]):
        assert in_transaction[key] == after_commit[key], key
    assert [in_transaction[f"score_{i}"] for i in range(len(windows))] == [37, 37, 37]

