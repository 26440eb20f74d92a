"""The live board as Server-Sent Events: GET /api/v1/leaderboard/stream.

An async view streaming from the channel layer, so under daphne a client costs a coroutine, not a thread. Same
credentials as the WebSocket (Bearer header, ?token= or the session), same coalesced board texts.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from scores import broadcast
from scoreboard_project.errors import error_body
from scores.live_auth import Refused, token_from_query, user_for_token, viewer_or_refuse


@csrf_exempt  # read-only; exempt so any other method gets the JSON 405 rather than a CSRF page
async def leaderboard_stream(request: HttpRequest) -> HttpResponse:
    """Stream `leaderboard_update` events: a snapshot (unless Last-Event-ID is current), then every change."""
    if request.method != "GET":
        return JsonResponse(error_body("method_not_allowed", "Method not allowed."), status=405, headers={"Allow": "GET"})
    try:
        await _viewer(request)
    except Refused as refusal:
        return JsonResponse(error_body(refusal.code, refusal.message), status=401, headers={"WWW-Authenticate": "Bearer"})
    response = StreamingHttpResponse(_events(_last_event_id(request)), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold events back
    return response


async def _viewer(request: HttpRequest) -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return await user_for_token(credentials.strip())
    token = token_from_query(request.META.get("QUERY_STRING", ""))
    if token is not None:
        return await user_for_token(token)
    return viewer_or_refuse(await request.auser())


def _last_event_id(request: HttpRequest) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId")
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


async def _events(last_event_id: int | None) -> AsyncIterator[str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    broadcast.serve_from_this_loop()
    await layer.group_add(broadcast.BOARD_GROUP, channel)
    # One receive stays pending across keep-alive ticks: cancelling it would drop the pub/sub subscription.
    pending: asyncio.Task | None = None
    try:
        yield f"retry: {settings.LIVE_SSE_RETRY_MS}\n\n"
        board = await database_sync_to_async(broadcast.current_board)()
        version = board.version
        if last_event_id != version:
            yield board.sse
        while True:
            pending = pending or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({pending}, timeout=settings.LIVE_SSE_KEEPALIVE_SECONDS)
            if not done:
                yield ": keep-alive\n\n"
                continue
            event, pending = pending.result(), None
            if event.get("type") == broadcast.BOARD_EVENT and event["version"] > version:
                version = event["version"]
                yield event["sse"]
    finally:
        if pending is not None:
            pending.cancel()
        await layer.group_discard(broadcast.BOARD_GROUP, channel)
