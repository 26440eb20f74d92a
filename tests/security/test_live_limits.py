import json

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import RefreshToken
from asgiref.sync import sync_to_async

from scores import connection_limits


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sixth_socket_of_a_user_is_closed_4429_and_a_banned_user_4403(alice, settings):
    from scoreboard_project.asgi import application
    token = await sync_to_async(lambda: str(RefreshToken.for_user(alice).access_token))()
    sockets = []
    for _ in range(5):
        ws = WebsocketCommunicator(application, f"/ws/scoreboard?token={token}")
        connected, _ = await ws.connect()
        assert connected
        sockets.append(ws)
    extra = WebsocketCommunicator(application, f"/ws/scoreboard?token={token}")
    connected, code = await extra.connect()
    assert (connected, code) == (False, 4429)
    await sockets[0].disconnect()
    again = WebsocketCommunicator(application, f"/ws/scoreboard?token={token}")
    assert (await again.connect())[0]
    for ws in sockets[1:] + [again]:
        await ws.disconnect()
    assert connection_limits.open_connections(user_id=alice.pk) == 0
    from accounts.services import ban_user
    await sync_to_async(ban_user)(user_id=alice.pk)
    banned = WebsocketCommunicator(application, f"/ws/scoreboard?token={token}")
    assert (await banned.connect())[0]  # opened only to say why, then closed 4403
    assert json.loads((await banned.receive_output(timeout=3))["text"])["error"]["code"] == "banned"
    assert await banned.receive_output(timeout=3) == {"type": "websocket.close", "code": 4403}
