"""A Redis outage, for real: a private redis-server on a free port is stopped (or frozen) mid-run and restarted.

Completions keep committing and succeeding, reads come from the database, /readyz says "degraded" with a 503,
and once Redis is back the boards are rebuilt and match the database exactly.
"""

import shutil
import time

import pytest

from deploy.throwaway import PrivateRedis
from scores import leaderboard
from tests.services_available import skip_or_fail_without
from scores.leaderboard import database, periods, redis_board, redis_rebuild, redis_scripts
from tests.scores.test_leaderboard_redis import _complete as complete_directly, _players

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]

# One request may wait at most this long on a dead Redis (two 250 ms timeouts: the write-through and the rank).
SLOWEST_COMPLETION_SECONDS = 1.5


@pytest.fixture
def private_redis(settings):
    if shutil.which("redis-server") is None:
        skip_or_fail_without("needs the redis-server binary (apt-get install redis-server)")
    server = PrivateRedis()
    server.start()
    settings.LEADERBOARD_BACKEND = "redis"
    settings.LEADERBOARD_REDIS_URL = server.url
    settings.LEADERBOARD_REDIS_RETRY_SECONDS = 0  # try Redis on every call, so recovery is seen at once
    yield server
    redis_rebuild.wait_for_background_rebuilds()
    server.cleanup()


def _complete(client) -> dict:
    started = time.monotonic()
    action = client.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json")
    response = client.put(f"/api/v1/users/me/actions/{action.json()['actionId']}", {"status": "completed"}, format="json")
    assert response.status_code == 200, response.content
    assert time.monotonic() - started < SLOWEST_COMPLETION_SECONDS
    return response.json()


def _truth(period: str) -> dict:
    return database.top(periods.current(period), 10).as_json()


def _read_every_board_until_rebuilt(anon) -> None:
    for period in leaderboard.PERIODS:
        assert anon.get(f"/api/v1/leaderboard?period={period}").json() == _truth(period)
    redis_rebuild.wait_for_background_rebuilds()


def _assert_redis_matches_database() -> None:
    for period in leaderboard.PERIODS:
        window = periods.current(period)
        assert redis_rebuild.drift(window) == [], period
        assert redis_board.top(window, 10).as_json() == _truth(period)


def test_redis_stopped_and_restarted_empty(private_redis, client_for, alice, bob, anon, quick_type):
    as_alice, as_bob = client_for(alice), client_for(bob)
    _complete(as_alice)
    _complete(as_bob)
    _complete(as_bob)
    leaderboard.rebuild()
    _assert_redis_matches_database()

    private_redis.stop()
    results = [_complete(as_alice) for _ in range(3)]
    assert [result["score"] for result in results] == [20, 30, 40]
    assert results[-1]["rank"] == 1
    for period in leaderboard.PERIODS:
        assert anon.get(f"/api/v1/leaderboard?period={period}").json() == _truth(period)
    assert as_bob.get("/api/v1/users/me").json()["ranks"] == {"all-time": 2, "weekly": 2, "daily": 2}
    ready = anon.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "down"
    assert body["checks"]["redis"]["error"] == "ConnectionError"
    assert str(private_redis.port) not in ready.content.decode()  # unauthenticated: no addresses
    assert anon.get("/healthz").status_code == 200

    private_redis.start()
    assert anon.get("/readyz").status_code == 200
    _complete(as_bob)
    _read_every_board_until_rebuilt(anon)
    _assert_redis_matches_database()
    assert [row["score"] for row in anon.get("/api/v1/leaderboard").json()["data"]] == [40, 30]


def test_redis_frozen_keeps_its_stale_board_which_is_rebuilt_when_it_answers(
    private_redis, client_for, alice, bob, anon, quick_type
):
    as_alice, as_bob = client_for(alice), client_for(bob)
    _complete(as_alice)
    leaderboard.rebuild()
    _assert_redis_matches_database()

    private_redis.freeze()  # connections hang: every call must give up after its short timeout
    try:
        assert [_complete(as_bob)["score"] for _ in range(2)] == [10, 20]
        assert anon.get("/api/v1/leaderboard").json() == _truth("all-time")
        assert anon.get("/readyz").json()["checks"]["redis"]["status"] == "down"
    finally:
        private_redis.thaw()

    # Redis still holds the board from before the freeze, without bob's scores: it must not be served as is.
    assert anon.get("/api/v1/leaderboard").json() == _truth("all-time")
    _read_every_board_until_rebuilt(anon)
    _assert_redis_matches_database()
    assert [row["username"] for row in anon.get("/api/v1/leaderboard").json()["data"]] == ["bob", "alice"]


def test_a_rebuild_that_loaded_before_a_missed_write_is_dropped_at_its_swap(make_user, quick_type, settings):
    """Recovery after a missed write invalidates the boards; a rebuild whose snapshot predates that write must not
    then swap in its board and mark it built (it would hide the write until the next rebuild)."""
    players = _players(make_user, 5)
    leaderboard.rebuild()
    window = periods.current("all-time")
    slow = redis_board.connection(timeout=redis_rebuild.REBUILD_TIMEOUT)
    token = redis_rebuild._acquire(window, wait=0)  # this test is the rebuild in flight: it holds the board's lock
    snapshot = redis_rebuild.load_snapshot(window, token, slow)

    settings.LEADERBOARD_REDIS_RETRY_SECONDS = 0
    live_url, settings.LEADERBOARD_REDIS_URL = settings.LEADERBOARD_REDIS_URL, "redis://127.0.0.1:1/0"
    complete_directly(players[0], times=5)  # committed, now the top score; its board write cannot reach Redis
    settings.LEADERBOARD_REDIS_URL = live_url
    assert leaderboard.top().entries[0].user_id == str(players[0].pk)  # Redis answers again: boards invalidated

    assert redis_rebuild.swap_in(window, snapshot, slow) is False
    assert redis_rebuild.drift(window) is None  # not built: readers stay on the database
    slow.client.eval(redis_scripts.RELEASE, 1, redis_board.Keys(window).lock, token)
    leaderboard.rebuild()
    assert redis_rebuild.drift(window) == []
