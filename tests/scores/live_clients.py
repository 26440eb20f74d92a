"""WebSocket clients of the real ASGI application (auth stack and router included), for the live tests."""

import json

from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from scoreboard_project.asgi import application
from scores import services

ORIGIN = (b"origin", b"http://localhost:8000")


def token(user) -> str:
    return str(AccessToken.for_user(user))


def complete(user, code: str = "quick") -> None:
    action = services.start_action(user=user, action_type_code=code)
    services.complete_action(user=user, action_id=action.pk)


async def connect(path: str = "/ws/scoreboard", *, headers=(), subprotocols=None):
    communicator = WebsocketCommunicator(application, path, headers=list(headers), subprotocols=subprotocols)
    connected, detail = await communicator.connect()
    return communicator, connected, detail


async def refusal(path: str = "/ws/scoreboard", *, headers=(), subprotocols=None) -> tuple[int, str]:
    """Refused credentials: the socket opens (so a browser sees the code), one error message, then a 44xx close."""
    ws, connected, _ = await connect(path, headers=headers, subprotocols=subprotocols)
    assert connected
    error = json.loads(await ws.receive_from(timeout=3))
    closed = await ws.receive_output(timeout=3)
    assert error["type"] == "error" and closed["type"] == "websocket.close", (error, closed)
    return closed["code"], error["error"]["code"]


async def receive(communicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=3))


async def assert_silent(communicator, seconds: float = 0.4) -> None:
    assert await communicator.receive_nothing(timeout=seconds), await communicator.receive_from()
