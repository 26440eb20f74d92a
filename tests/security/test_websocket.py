"""A WebSocket opened from a foreign Origin with a visitor's session cookie (cross-site WebSocket hijacking)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

WS_PATH = "/ws/scoreboard"


def _websocket_app():
    from scoreboard_project.asgi import application

    if "websocket" not in getattr(application, "application_mapping", {}):
        pytest.skip("no WebSocket routing in this build (the live-push consumer is wired in at merge)")
    return application


def _session_cookie(user) -> bytes:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_foreign_origin_with_a_session_cookie_is_refused(alice):
    application = _websocket_app()
    cookie = await sync_to_async(_session_cookie)(alice)
    communicator = WebsocketCommunicator(
        application, WS_PATH, headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie), (b"host", b"localhost")]
    )
    connected, code = await communicator.connect()
    assert not connected
    assert code in (4403, 403, 1008)  # refused before accept
    await communicator.disconnect()
