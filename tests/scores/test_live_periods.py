"""Live push per period: `?period=all-time|weekly|daily` on /ws/scoreboard and /api/v1/leaderboard/stream.

Kept apart from test_consumers.py / test_stream.py (same helpers, imported) so the period tests merge cleanly with
other work on those files. A fake clock (time-machine) stands in for midnight; nothing of ours is mocked.
"""

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from channels.db import database_sync_to_async
from django.db.models import F

from scores import leaderboard, relay, services
from scores.consumers import CLOSE_BAD_REQUEST
from scores.models import ActionType, ScoreEvent
from tests.scores.live_clients import ORIGIN, assert_silent, connect, receive, refusal, token
from tests.scores.test_stream import Stream, bearer, error_of

pytestmark = [
    pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_broadcasts"),
]


def give(user, points: int) -> None:
    """`points` through the write path (a completable-at-once action worth that much)."""
    code = f"gift-{points}"
    ActionType.objects.get_or_create(code=code, defaults={"name": code, "points": points, "max_duration_seconds": 60})
    action = services.start_action(user=user, action_type_code=code)
    services.complete_action(user=user, action_id=action.pk)


def age(user, days: int = 8) -> None:
    """Move the user's ledger rows `days` back: they still count all-time, no longer this week or today."""
    ScoreEvent.objects.filter(user=user).update(created_at=F("created_at") - timedelta(days=days))
    leaderboard.rebuild()  # the Redis period boards were built from the rows before they moved (no-op on the DB)


def board_of(message: dict) -> list[tuple[int, str, int]]:
    return [(entry["rank"], entry["username"], entry["score"]) for entry in message["payload"]]


async def next_board(ws) -> dict:
    """The next top_scores_update, past any rank_update (the user's group and the relay race each other)."""
    while (message := await receive(ws))["type"] == "rank_update":
        pass
    return message


async def settle() -> None:
    # Let the setup's own coalesced broadcast (LIVE_COALESCE_MS = 50) go out before anyone connects.
    await asyncio.sleep(0.3)


@pytest.fixture
def alice_old_bob_new(alice, bob):
    """alice scored 30 last week; bob 10 today. All-time: alice, bob. This week and today: bob only."""
    give(alice, 30)
    age(alice)
    give(bob, 10)


# --- WebSocket ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["weekly", "daily"])
async def test_period_snapshot_on_connect(alice_old_bob_new, alice, period):
    await settle()
    ws, connected, _ = await connect(f"/ws/scoreboard?period={period}&token={token(alice)}")
    assert connected
    board = await receive(ws)
    assert board["type"] == "top_scores_update" and board["period"] == period
    assert board_of(board) == [(1, "bob", 10)]
    # rank_update stays the viewer's all-time standing, whatever board the socket shows (README: live push).
    assert await receive(ws) == {"type": "rank_update", "score": 30, "rank": 1, "version": board["version"]}
    await ws.disconnect()


async def test_default_is_all_time_and_says_so(alice_old_bob_new, alice):
    await settle()
    ws, connected, _ = await connect(f"/ws/scoreboard?token={token(alice)}")
    assert connected
    board = await receive(ws)
    assert board["period"] == "all-time" and board_of(board) == [(1, "alice", 30), (2, "bob", 10)]
    await ws.disconnect()


async def test_weekly_viewer_gets_each_weekly_change_with_growing_versions(alice_old_bob_new, alice, bob, make_user):
    carol = await database_sync_to_async(make_user)("carol")
    await settle()
    # No credentials: a period does not bypass authentication.
    assert await refusal("/ws/scoreboard?period=weekly", headers=[ORIGIN]) == (4401, "not_authenticated")
    ws, connected, _ = await connect(f"/ws/scoreboard?period=weekly&token={token(carol)}")
    assert connected
    snapshot = await receive(ws)

    await database_sync_to_async(give)(carol, 20)
    first = await next_board(ws)
    assert first["type"] == "top_scores_update" and first["period"] == "weekly"
    assert board_of(first) == [(1, "carol", 20), (2, "bob", 10)]

    await database_sync_to_async(give)(bob, 20)
    second = await next_board(ws)
    assert second["period"] == "weekly" and board_of(second) == [(1, "bob", 30), (2, "carol", 20)]
    assert snapshot["version"] < first["version"] < second["version"]
    await ws.disconnect()


@pytest.mark.parametrize("query", ["period=monthly", "period=", "period=WEEKLY", "period=weekly&period=hourly"])
async def test_unknown_period_is_refused_before_accept(alice, query):
    ws, connected, code = await connect(f"/ws/scoreboard?{query}&token={token(alice)}")
    assert not connected and code == CLOSE_BAD_REQUEST


async def test_change_outside_a_periods_top_ten_sends_that_period_nothing(alice, make_user, settings):
    """alice leads all-time from last week's points; ten others lead this week. Her small score today moves the
    all-time board but is 11th this week and today: weekly and daily viewers hear nothing."""
    await database_sync_to_async(give)(alice, 1000)
    await database_sync_to_async(age)(alice)
    for n in range(10):
        await database_sync_to_async(give)(await database_sync_to_async(make_user)(f"player{n}"), 50)
    await settle()
    settings.LIVE_ALLOW_ANONYMOUS = True
    viewers = {}
    for period in leaderboard.PERIODS:
        viewers[period], connected, _ = await connect(f"/ws/scoreboard?period={period}")
        assert connected
        assert (await receive(viewers[period]))["period"] == period

    await database_sync_to_async(give)(alice, 10)

    update = await receive(viewers["all-time"])
    assert update["period"] == "all-time" and board_of(update)[0] == (1, "alice", 1010)
    await assert_silent(viewers["weekly"])
    await assert_silent(viewers["daily"], seconds=0.1)
    for ws in viewers.values():
        await ws.disconnect()


async def test_one_broadcast_per_changed_period_and_the_relay_keeps_each_periods_latest(alice_old_bob_new, bob):
    await settle()
    viewers = {}
    for period in leaderboard.PERIODS:
        viewers[period], connected, _ = await connect(f"/ws/scoreboard?period={period}&token={token(bob)}")
        assert connected
        await receive(viewers[period])
        await receive(viewers[period])  # bob's rank
    board_relay = relay.for_this_loop()

    await database_sync_to_async(give)(bob, 5)

    for period, ws in viewers.items():
        messages = [await receive(ws), await receive(ws)]
        board = next(message for message in messages if message["type"] == "top_scores_update")
        assert board["period"] == period and board_relay.boards[period]["ws"] == json.dumps(board, separators=(",", ":"))
    assert board_of(board_relay_message(board_relay, "weekly")) == [(1, "bob", 15)]
    assert board_of(board_relay_message(board_relay, "all-time")) == [(1, "alice", 30), (2, "bob", 15)]
    for ws in viewers.values():
        await ws.disconnect()


def board_relay_message(board_relay: relay.Relay, period: str) -> dict:
    return json.loads(board_relay.boards[period]["ws"])


# --- Day and week rollover (a fake clock at the edge) -----------------------------------------------------------


async def test_daily_and_weekly_viewers_get_the_empty_board_when_the_day_and_week_roll_over(settings, alice):
    settings.LIVE_ALLOW_ANONYMOUS = True
    settings.LIVE_RESYNC_SECONDS = 0.3
    sunday_night = datetime(2030, 1, 6, 23, 59, 50, tzinfo=timezone.utc)  # a Sunday: the ISO week ends with the day
    with time_machine.travel(sunday_night, tick=True) as clock:
        await database_sync_to_async(give)(alice, 10)
        await settle()
        viewers = {}
        for period in leaderboard.PERIODS:
            viewers[period], connected, _ = await connect(f"/ws/scoreboard?period={period}")
            assert connected
            assert board_of(await receive(viewers[period])) == [(1, "alice", 10)]

        clock.move_to(datetime(2030, 1, 7, 0, 0, 0, 100000, tzinfo=timezone.utc))

        for period in ("daily", "weekly"):
            rolled = await receive(viewers[period])
            assert rolled["period"] == period and rolled["payload"] == []
        await assert_silent(viewers["all-time"], seconds=0.8)  # all-time never rolls over
        await assert_silent(viewers["daily"], seconds=0.1)  # and the new empty board is not sent again

        late, connected, _ = await connect("/ws/scoreboard?period=daily")
        assert connected and (await receive(late))["payload"] == []
        for ws in [*viewers.values(), late]:
            await ws.disconnect()


async def test_a_new_days_board_equal_to_yesterdays_last_one_is_still_sent(settings, alice):
    settings.LIVE_ALLOW_ANONYMOUS = True
    settings.LIVE_RESYNC_SECONDS = 60  # no idle resync to repair a missed broadcast within the test
    with time_machine.travel(datetime(2030, 1, 8, 23, 59, 0, tzinfo=timezone.utc), tick=True) as clock:
        await database_sync_to_async(give)(alice, 10)
        await settle()  # yesterday's last daily board, [alice 10], went out
        clock.move_to(datetime(2030, 1, 9, 0, 0, 1, tzinfo=timezone.utc))
        viewer, connected, _ = await connect("/ws/scoreboard?period=daily")
        assert connected and (await receive(viewer))["payload"] == []  # the new day, empty so far
        await database_sync_to_async(give)(alice, 10)  # today's board is now what yesterday's was
        assert board_of(await next_board(viewer)) == [(1, "alice", 10)]
        await viewer.disconnect()


# --- SSE ---------------------------------------------------------------------------------------------------------


async def test_sse_weekly_snapshot_then_weekly_changes(alice_old_bob_new, bob, make_user):
    await settle()
    stream = Stream(query="period=weekly", headers=[bearer(bob)])
    assert (await stream.open())["status"] == 200
    await stream.chunk()  # retry hint
    snapshot = await stream.event()
    assert snapshot["event"] == "leaderboard_update" and snapshot["data"]["period"] == "weekly"
    assert [(e["username"], e["score"]) for e in snapshot["data"]["data"]] == [("bob", 10)]

    await database_sync_to_async(give)(bob, 5)
    event = await stream.event()
    assert event["data"]["period"] == "weekly" and int(event["id"]) > int(snapshot["id"])
    assert [(e["username"], e["score"]) for e in event["data"]["data"]] == [("bob", 15)]
    await stream.close()


async def test_sse_unknown_period_is_400_json(alice):
    status, body = await error_of(Stream(query="period=yearly", headers=[bearer(alice)]))
    assert status == 400
    assert body["error"]["code"] == "invalid_period" and body["error"]["details"] == {"allowed": list(leaderboard.PERIODS)}


async def test_sse_default_is_all_time(alice_old_bob_new, alice):
    await settle()
    stream = Stream(headers=[bearer(alice)])
    await stream.open()
    await stream.chunk()
    event = await stream.event()
    assert event["data"]["period"] == "all-time"
    assert [e["username"] for e in event["data"]["data"]] == ["alice", "bob"]
    await stream.close()


async def test_sse_reconnect_with_the_current_id_after_midnight_gets_the_new_days_board(settings, alice):
    sunday_night = datetime(2030, 1, 6, 23, 59, 50, tzinfo=timezone.utc)
    with time_machine.travel(sunday_night, tick=True) as clock:
        await database_sync_to_async(give)(alice, 10)
        await settle()
        last_seen = await database_sync_to_async(lambda: ScoreEvent.objects.latest("id").pk)()
        resumed_today = Stream(query="period=daily", headers=[bearer(alice), (b"last-event-id", str(last_seen).encode())])
        await resumed_today.open()
        await resumed_today.chunk()  # retry hint
        assert (await resumed_today.event())["data"]["data"][0]["username"] == "alice"  # a snapshot, always
        await resumed_today.close()

        clock.move_to(datetime(2030, 1, 7, 0, 0, 0, 100000, tzinfo=timezone.utc))

        # No ledger row since midnight, so the id is unchanged, yet the client's board is yesterday's.
        for period in ("daily", "weekly"):
            stream = Stream(query=f"period={period}", headers=[bearer(alice), (b"last-event-id", str(last_seen).encode())])
            await stream.open()
            await stream.chunk()
            event = await stream.event()
            assert event["id"] == str(last_seen) and event["data"]["period"] == period and event["data"]["data"] == []
            await stream.close()
        all_time = Stream(headers=[bearer(alice), (b"last-event-id", str(last_seen).encode())])
        await all_time.open()
        await all_time.chunk()
        assert (await all_time.event())["data"]["data"][0]["score"] == 10  # all-time never rolls over
        await all_time.close()
