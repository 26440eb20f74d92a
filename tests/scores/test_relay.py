"""The per-process relay: latest-wins bookkeeping and one delivery per process for many viewers."""

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone

from scores import broadcast, leaderboard, relay, services
from scores.models import ScoreEvent
from tests.scores.live_clients import connect, receive

User = get_user_model()


def event(version: int, sse: str = "board") -> dict:
    return {"type": broadcast.BOARD_EVENT, "version": version, "ws": "{}", "sse": sse}


def test_latest_board_skips_repeats_and_older_but_takes_a_same_version_correction():
    first = event(5)
    board = relay.LatestBoard(first)
    assert not board.take(first)
    assert not board.take(event(4))
    correction = event(5, sse="renamed")
    assert board.take(correction)
    assert board.take(event(6))


@pytest.mark.redis
def test_layer_prefix_names_the_redis_database():
    # Redis pub/sub channels are shared by every database of a server: the prefix must tell deployments apart.
    database = urlsplit(settings.REDIS_URL).path.strip("/") or "0"
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"].endswith(f":{database}:asgi")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_many_viewers_in_one_process_share_one_relay_and_all_get_the_board(settings, alice, quick_type):
    settings.LIVE_COALESCE_MS = 50
    settings.LIVE_ALLOW_ANONYMOUS = True
    broadcast.reset()
    viewers = []
    for _ in range(30):
        ws, connected, _ = await connect()
        assert connected
        viewers.append(ws)
        await receive(ws)  # snapshot
    assert len(relay.for_this_loop().viewers) == 30

    action = await database_sync_to_async(services.start_action)(user=alice, action_type_code="quick")
    await database_sync_to_async(services.complete_action)(user=alice, action_id=action.pk)

    for ws in viewers:
        assert json.loads(await ws.receive_from(timeout=3))["payload"][0]["score"] == 10
    await asyncio.gather(*(ws.disconnect() for ws in viewers))
    assert relay.for_this_loop().viewers == set()


def _change_without_broadcast(user) -> None:
    # Stands in for a broadcast lost on the way (pub/sub drops messages while a Redis connection is down).
    now = timezone.now()
    User.objects.filter(pk=user.pk).update(score=F("score") + 10, score_updated_at=now)
    ScoreEvent.objects.create(user=user, delta=10, resulting_total=10, reason="action_completed", created_at=now)
    leaderboard.record_score(user_id=user.pk, score=10, reached_at=now)  # the board store (Redis or database)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_idle_relay_repairs_a_lost_broadcast_from_the_database(settings, alice):
    settings.LIVE_RESYNC_SECONDS = 0.3
    settings.LIVE_ALLOW_ANONYMOUS = True
    ws, connected, _ = await connect()
    assert connected
    assert (await receive(ws))["payload"] == []

    await database_sync_to_async(_change_without_broadcast)(alice)

    board = json.loads(await ws.receive_from(timeout=3))
    assert [(e["username"], e["score"]) for e in board["payload"]] == [("alice", 10)]
    assert await ws.receive_nothing(timeout=0.8)  # an unchanged board is not sent again
    await ws.disconnect()


def _ban_without_broadcast(user) -> None:
    User.objects.filter(pk=user.pk).update(is_banned=True)
    leaderboard.remove_user(user_id=user.pk)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_idle_relay_repairs_a_lost_ban_though_the_version_is_unchanged(settings, alice, bob, quick_type):
    settings.LIVE_COALESCE_MS = 50
    settings.LIVE_ALLOW_ANONYMOUS = True
    broadcast.reset()
    for user in (alice, bob):
        action = await database_sync_to_async(services.start_action)(user=user, action_type_code="quick")
        await database_sync_to_async(services.complete_action)(user=user, action_id=action.pk)
    await asyncio.sleep(0.3)  # the completions' own broadcast goes out before anyone connects
    settings.LIVE_RESYNC_SECONDS = 0.3
    ws, connected, _ = await connect()
    assert connected
    before = await receive(ws)
    assert {e["username"] for e in before["payload"]} == {"alice", "bob"}

    await database_sync_to_async(_ban_without_broadcast)(alice)

    board = json.loads(await ws.receive_from(timeout=3))
    assert [e["username"] for e in board["payload"]] == ["bob"] and board["version"] == before["version"]
    await ws.disconnect()


def test_a_board_from_before_midnight_never_replaces_the_new_days():
    def daily(version: int, day: str, digest: str) -> dict:
        return {**event(version), "period": "daily", "window": f"daily:2030-01-{day}", "digest": digest}

    today = daily(7, "07", "empty")
    assert not relay._newer(daily(7, "06", "late"), today)
    assert relay._newer(daily(8, "07", "next"), today)
    assert relay._newer(today, daily(7, "06", "late"))
