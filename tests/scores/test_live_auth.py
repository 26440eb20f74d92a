"""Who may watch over WebSocket (scores/live_auth.py through the consumer): tokens, cookies, Origin, bans."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import ban_user
from tests.scores.live_clients import ORIGIN, assert_silent, complete, connect, receive, refusal, token

pytestmark = [
    pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_broadcasts"),
]


@pytest.fixture
def session_cookie(alice) -> bytes:
    client = Client()
    client.force_login(alice)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_query_token_gets_board_snapshot_then_own_rank(alice, bob, quick_type):
    await database_sync_to_async(complete)(alice)
    await database_sync_to_async(complete)(bob)
    await database_sync_to_async(complete)(bob)
    ws, connected, _ = await connect(f"/ws/scoreboard?token={token(alice)}")
    assert connected
    board = await receive(ws)
    assert board["type"] == "top_scores_update"
    assert [(e["rank"], e["username"], e["score"]) for e in board["payload"]] == [(1, "bob", 20), (2, "alice", 10)]
    assert board["payload"][1]["userId"] == str(alice.pk)
    assert isinstance(board["version"], int) and board["timestamp"]
    assert await receive(ws) == {"type": "rank_update", "score": 10, "rank": 2, "version": board["version"]}
    await ws.disconnect()


async def test_bearer_subprotocol_is_accepted_with_bearer(alice):
    ws, connected, subprotocol = await connect(subprotocols=["bearer", token(alice)])
    assert connected and subprotocol == "bearer"
    board = await receive(ws)
    assert board["payload"] == [] and board["version"] == 0
    await ws.disconnect()


async def test_session_cookie_with_allowed_origin(alice, session_cookie):
    ws, connected, _ = await connect(headers=[(b"cookie", session_cookie), ORIGIN])
    assert connected
    assert (await receive(ws))["type"] == "top_scores_update"
    await ws.disconnect()


async def test_session_cookie_without_origin_is_refused(session_cookie):
    assert await refusal(headers=[(b"cookie", session_cookie)]) == (4401, "not_authenticated")


async def test_foreign_origin_is_refused_even_with_session_or_token(alice, session_cookie):
    evil = (b"origin", b"https://evil.example")
    _, connected, code = await connect(headers=[(b"cookie", session_cookie), evil])
    assert (connected, code) == (False, 4403)
    _, connected, code = await connect(f"/ws/scoreboard?token={token(alice)}", headers=[evil])
    assert (connected, code) == (False, 4403)


@pytest.mark.parametrize("origin", [b"null", b"localhost", b"ftp://localhost", b"http://[", b"https://[::1"])
async def test_malformed_origin_is_refused(alice, origin):
    _, connected, code = await connect(f"/ws/scoreboard?token={token(alice)}", headers=[(b"origin", origin)])
    assert (connected, code) == (False, 4403)


async def test_token_client_without_origin_is_accepted(alice):
    ws, connected, _ = await connect(f"/ws/scoreboard?token={token(alice)}")
    assert connected
    await ws.disconnect()


async def test_no_credentials_refused_by_default():
    assert await refusal(headers=[ORIGIN]) == (4401, "not_authenticated")


async def test_bad_expired_or_foreign_tokens_are_refused(alice):
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    forged = token(alice)[:-4] + "AAAA"
    for bad in ("garbage", str(expired), forged, ""):
        assert (await refusal(f"/ws/scoreboard?token={bad}"))[0] == 4401, bad
    assert await refusal(subprotocols=["bearer", "garbage"]) == (4401, "invalid_token")


async def test_bad_token_refused_even_with_a_valid_session(session_cookie):
    assert await refusal("/ws/scoreboard?token=garbage", headers=[(b"cookie", session_cookie), ORIGIN]) == (4401, "invalid_token")


async def test_banned_user_is_told_so_and_closed_with_4403(alice):
    await database_sync_to_async(ban_user)(user_id=alice.pk)
    assert await refusal(f"/ws/scoreboard?token={token(alice)}") == (4403, "banned")
    assert await refusal(subprotocols=["bearer", token(alice)]) == (4403, "banned")


async def test_inactive_user_token_refused(alice):
    alice.is_active = False
    await database_sync_to_async(alice.save)()
    assert await refusal(f"/ws/scoreboard?token={token(alice)}") == (4401, "invalid_token")


async def test_anonymous_viewers_when_the_setting_allows(settings, alice, quick_type):
    settings.LIVE_ALLOW_ANONYMOUS = True
    await database_sync_to_async(complete)(alice)
    ws, connected, _ = await connect()
    assert connected
    board = await receive(ws)
    assert [e["username"] for e in board["payload"]] == ["alice"]
    await assert_silent(ws, 0.2)  # no rank_update for nobody
    await ws.disconnect()


async def test_unknown_path_is_refused():
    _, connected, code = await connect("/ws/elsewhere")
    assert (connected, code) == (False, 4404)
