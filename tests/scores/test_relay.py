"""The per-process relay: latest-wins bookkeeping and one delivery per process for many viewers."""

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from scores import broadcast, relay, services
from tests.scores.test_consumers import connect, receive


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
