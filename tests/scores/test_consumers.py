"""The WebSocket consumer through the real ASGI application (auth stack and router included)."""

import asyncio
import json

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async

from scores import broadcast
from tests.scores.live_clients import assert_silent, complete, connect, receive, token

pytestmark = [
    pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_broadcasts"),
]


async def receive_by_type(communicator, count: int) -> dict:
    # A board (through the process relay) and a rank_update (through the user's group) may arrive in either order.
    messages = [await receive(communicator) for _ in range(count)]
    return {message["type"]: message for message in messages}


async def ranked_players(make_user, count: int) -> list:
    """`count` players: player0 with count * 10 points, then 10 fewer each, down to 10; their broadcast gone by."""
    users = [await database_sync_to_async(make_user)(f"player{i}") for i in range(count)]
    for index, user in enumerate(users):
        for _ in range(count - index):
            await database_sync_to_async(complete)(user)
    await asyncio.sleep(0.2)
    return users


async def connect_ranked(user) -> tuple:
    """`user`'s socket past its snapshot: (socket, the board's version, the user's rank_update)."""
    ws, _, _ = await connect(f"/ws/scoreboard?token={token(user)}")
    board = await receive(ws)
    return ws, board["version"], await receive(ws)


# --- Frames from the client -------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def viewer(alice):
    ws, connected, _ = await connect(f"/ws/scoreboard?token={token(alice)}")
    assert connected
    await receive(ws)  # snapshot
    yield ws
    await ws.disconnect()


async def test_ping_gets_pong(viewer):
    await viewer.send_json_to({"type": "ping"})
    assert await receive(viewer) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [("not json", "bad_json"), ('{"type": "shout"}', "unknown_type"), ("[1, 2]", "unknown_type"), ("42", "unknown_type")],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(viewer, frame, code):
    await viewer.send_to(text_data=frame)
    reply = await receive(viewer)
    assert reply["type"] == "error" and reply["error"]["code"] == code
    await viewer.send_json_to({"type": "ping"})
    assert await receive(viewer) == {"type": "pong"}


async def test_json_nested_past_the_parsers_limit_is_bad_json_and_the_socket_stays_open(viewer):
    await viewer.send_to(text_data="[" * 2000)  # under LIVE_MAX_FRAME_BYTES
    reply = await receive(viewer)
    assert reply["type"] == "error" and reply["error"]["code"] == "bad_json"
    await viewer.send_json_to({"type": "ping"})
    assert await receive(viewer) == {"type": "pong"}


async def test_a_socket_whose_handler_fails_gives_its_connection_slot_back(alice, settings):
    from channels.layers import get_channel_layer

    from scores import connection_limits

    settings.MAX_CONNECTIONS_PER_USER = 1
    ws, connected, _ = await connect(f"/ws/scoreboard?token={token(alice)}")
    assert connected
    await receive(ws)
    await get_channel_layer().group_send(broadcast.user_group(alice.pk), {"type": "no.such.handler"})
    with pytest.raises(ValueError):
        await ws.receive_output(timeout=3)
    count = await database_sync_to_async(connection_limits.open_connections)(user_id=alice.pk)
    assert count == 0
    again, connected, code = await connect(f"/ws/scoreboard?token={token(alice)}")
    assert connected, code  # not refused with 4429 for a socket that is gone
    await again.disconnect()


async def test_binary_frame_closes_with_1003(viewer):
    await viewer.send_to(bytes_data=b"\x00\x01")
    assert await viewer.receive_output(timeout=3) == {"type": "websocket.close", "code": 1003}


async def test_oversized_frame_closes_with_1009(viewer, settings):
    await viewer.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * settings.LIVE_MAX_FRAME_BYTES}))
    assert await viewer.receive_output(timeout=3) == {"type": "websocket.close", "code": 1009}


async def test_frame_size_counts_bytes_not_characters(viewer, settings):
    euros = "€" * (settings.LIVE_MAX_FRAME_BYTES // 3)  # fewer characters than the limit, more bytes
    await viewer.send_to(text_data=json.dumps({"type": "ping", "pad": euros}, ensure_ascii=False))
    assert await viewer.receive_output(timeout=3) == {"type": "websocket.close", "code": 1009}


# --- Broadcasts -------------------------------------------------------------------------------------------------


async def test_burst_of_changes_reaches_every_viewer_as_one_coalesced_board(settings, alice, bob, quick_type):
    settings.LIVE_COALESCE_MS = 1500  # wide enough that a loaded CI box still fits the burst in one window
    watcher, _, _ = await connect(f"/ws/scoreboard?token={token(bob)}")
    player, _, _ = await connect(subprotocols=["bearer", token(alice)])
    first = await receive(watcher)
    await receive(player)

    for _ in range(3):
        await database_sync_to_async(complete)(alice)

    board = await receive(watcher)
    got = await receive_by_type(player, 2)
    assert got["top_scores_update"] == board
    assert [(e["username"], e["score"]) for e in board["payload"]] == [("alice", 30)]
    assert board["version"] > first["version"]
    assert got["rank_update"] == {"type": "rank_update", "score": 30, "rank": 1, "version": board["version"]}
    await assert_silent(watcher)
    await assert_silent(player, 0.1)
    await watcher.disconnect()
    await player.disconnect()


async def test_change_outside_the_top_10_sends_no_board(make_user, quick_type, settings):
    users = await ranked_players(make_user, 12)  # player0 has 120 points ... player11 has 10
    watcher, _, mine = await connect_ranked(users[0])
    assert mine["rank"] == 1
    outsider, version, mine = await connect_ranked(users[11])
    assert mine == {"type": "rank_update", "score": 10, "rank": 12, "version": version}

    settings.LIVE_COALESCE_MS = 1500  # wide enough that a loaded CI box still fits the burst in one window
    await database_sync_to_async(complete)(users[11])
    await database_sync_to_async(complete)(users[11])  # 30 points: passes player10, still outside the top 10

    await assert_silent(watcher)
    assert await receive(outsider) == {"type": "rank_update", "score": 30, "rank": 11, "version": version + 2}
    await assert_silent(outsider, 0.1)
    await watcher.disconnect()
    await outsider.disconnect()


async def test_a_viewer_passed_by_others_hears_its_new_rank_without_a_change_of_its_own(make_user, quick_type, settings):
    settings.LIVE_RANK_REFRESH_SECONDS = 1
    users = await ranked_players(make_user, 12)  # ... player10 has 20 (11th), player11 has 10
    leader, _, mine = await connect_ranked(users[0])
    assert mine["rank"] == 1
    passed, version, mine = await connect_ranked(users[10])
    assert mine == {"type": "rank_update", "score": 20, "rank": 11, "version": version}

    for _ in range(2):  # player11 reaches 30: past player10, still behind player9 (who got there first)
        await database_sync_to_async(complete)(users[11])

    assert await receive(passed) == {"type": "rank_update", "score": 20, "rank": 12, "version": version + 2}
    await assert_silent(leader, 1.5)  # the leader's rank did not move: nothing to say
    await assert_silent(passed, 1.2)  # told once, not at every refresh
    await leader.disconnect()
    await passed.disconnect()


async def test_entering_the_top_10_pushes_a_rank_update_to_the_user_pushed_out(make_user, quick_type, settings):
    users = await ranked_players(make_user, 11)  # player9 has 20 points (10th), player10 has 10
    pushed, _, _ = await connect(f"/ws/scoreboard?token={token(users[9])}")
    await receive(pushed)
    assert (await receive(pushed))["rank"] == 10

    settings.LIVE_COALESCE_MS = 1500  # wide enough that a loaded CI box still fits the burst in one window
    for _ in range(3):
        await database_sync_to_async(complete)(users[10])

    got = await receive_by_type(pushed, 2)
    board = got["top_scores_update"]
    assert [e["username"] for e in board["payload"]][-2:] == ["player10", "player8"]
    assert got["rank_update"] == {"type": "rank_update", "score": 20, "rank": 11, "version": board["version"]}
    await pushed.disconnect()


async def test_a_viewer_moved_up_by_a_ban_hears_its_new_rank_at_once(alice, bob, quick_type, settings):
    from accounts.services import ban_user

    settings.LIVE_RANK_REFRESH_SECONDS = 60  # not the periodic re-read: the ban's own flush
    for user in (alice, alice, bob):
        await database_sync_to_async(complete)(user)
    await asyncio.sleep(0.2)
    ws, version, mine = await connect_ranked(bob)
    assert mine["rank"] == 2
    await database_sync_to_async(ban_user)(user_id=alice.pk)
    messages = await receive_by_type(ws, 2)
    assert [entry["username"] for entry in messages["top_scores_update"]["payload"]] == ["bob"]
    assert messages["rank_update"] == {"type": "rank_update", "score": 10, "rank": 1, "version": version}
    await ws.disconnect()
