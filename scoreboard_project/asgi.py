"""ASGI entry point: HTTP through Django, WebSockets through Channels.

The Origin check lives in the consumer rather than AllowedHostsOriginValidator: the stock validator refuses any
socket without an Origin header, and token clients (games, scripts) send none. Cookie sessions, the thing the
Origin check protects, still require an allowed Origin (scores/consumers.py).
"""

import asyncio
import json
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs the app registry loaded above
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from scoreboard_project.errors import error_body  # noqa: E402
from scores import routing  # noqa: E402
from scores.frames import DirectFrames  # noqa: E402


class RefuseUndecodableQuery:
    """Django's ASGI handler answers a query string that is not UTF-8 with an empty text/html 400 before any
    middleware runs; answer it here instead, in the API's one error shape."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            scope.get("query_string", b"").decode()
        except UnicodeDecodeError:
            body = json.dumps(error_body("malformed_request", "The query string is not valid UTF-8.")).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class NoticeClientGone:
    """Put an asyncio.Event in the scope (`scoreboard.client_gone`) that is set when the client disconnects.

    Django cancels a request's task once on disconnect, and a view that is inside sync_to_async then carries on
    (asgiref waits for the thread); a streaming response it then returns is written to a closed connection for
    ever. The SSE stream watches this event instead (scores/stream.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        gone = asyncio.Event()

        async def receive_noting_disconnect() -> dict:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            return message

        await self.app({**scope, "scoreboard.client_gone": gone}, receive_noting_disconnect, send)


application = ProtocolTypeRouter(
    {
        "http": RefuseUndecodableQuery(NoticeClientGone(django_asgi_app)),
        "websocket": DirectFrames(AuthMiddlewareStack(URLRouter(routing.websocket_urlpatterns))),
    }
)
