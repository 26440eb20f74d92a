"""Long-lived SSE streams must not hold database connections: under daphne the pool is shared by every request, so a
stream that kept its connection would starve the API once there were as many viewers as the pool's size."""

import asyncio

import httpx
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from rest_framework_simplejwt.tokens import AccessToken

from tests.live_servers import Daphne, live_env

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
]

POOL_MAX = 2


@pytest.fixture
def server(django_db_setup, django_db_blocker):
    env = live_env(DB_POOL="true", DB_CONN_MAX_AGE="0", DB_POOL_MIN="1", DB_POOL_MAX=str(POOL_MAX),
                   DB_POOL_TIMEOUT="2", LIVE_ALLOW_ANONYMOUS="false")
    daphne = Daphne(env)
    try:
        daphne.wait_ready()
        yield daphne
    finally:
        print(daphne.output())
        daphne.stop()


@database_sync_to_async
def session_cookie(user) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


async def first_event(client: httpx.AsyncClient, headers: dict, opened: list) -> None:
    async with client.stream("GET", "/api/v1/leaderboard/stream", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("event: leaderboard_update"):
                opened.append(True)
                await asyncio.sleep(30)  # held open until the test ends


@pytest.mark.parametrize("credential", ["cookie", "token"])
async def test_more_sse_viewers_than_pool_connections_leave_the_api_answering(server, alice, credential):
    if credential == "cookie":
        headers = {"Cookie": await session_cookie(alice)}
    else:
        headers = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}
    opened: list = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        streams = [asyncio.create_task(first_event(client, headers, opened)) for _ in range(POOL_MAX * 2)]
        try:
            for _ in range(100):
                if len(opened) == len(streams):
                    break
                await asyncio.sleep(0.1)
            assert len(opened) == len(streams)
            bearer = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}
            for _ in range(3):  # each needs a pooled connection; a held pool makes them wait 2 s and fail with 503
                response = await client.get("/api/v1/users/me/actions", headers=bearer)
                assert response.status_code == 200, response.text
        finally:
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
