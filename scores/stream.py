"""The live board as Server-Sent Events: GET /api/v1/leaderboard/stream.

An async view fed by the process's board relay (scores/relay.py), so under daphne a client costs a coroutine and a
queue, not a thread. Same
credentials as the WebSocket (Bearer header, ?token= or the session), same coalesced board texts.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from scoreboard_project import metrics
from scoreboard_project.client_ip import client_ip
from scoreboard_project.errors import error_body
from scores import connection_limits, leaderboard, relay
from scores.live_auth import Refused, session_user, token_from_query, user_for_token, viewer_or_refuse


@csrf_exempt  # read-only; exempt so any other method gets the JSON 405 rather than a CSRF page
async def leaderboard_stream(request: HttpRequest) -> HttpResponse:
    """Stream `leaderboard_update` events of `?period=` (all-time by default): a snapshot (unless Last-Event-ID is
    current), then every change. An unknown period is a 400."""
    if request.method != "GET":
        return JsonResponse(error_body("method_not_allowed", "Method not allowed."), status=405, headers={"Allow": "GET"})
    try:
        period = relay.requested_period(request.META.get("QUERY_STRING", ""))
    except relay.UnknownPeriod as refusal:
        return JsonResponse(error_body("invalid_period", str(refusal), {"allowed": list(leaderboard.PERIODS)}),
                            status=400)
    try:
        viewer = await _viewer(request)
    except Refused as refusal:
        metrics.count_rejection(403 if refusal.code == "banned" else 401, refusal.code)
        if refusal.code == "banned":
            return JsonResponse(error_body(refusal.code, refusal.message), status=403)
        return JsonResponse(error_body(refusal.code, refusal.message), status=401, headers={"WWW-Authenticate": "Bearer"})
    try:
        lease = await connection_limits.aacquire(user_id=getattr(viewer, "pk", None), ip=client_ip(request))
    except connection_limits.TooManyConnections as refusal:
        metrics.count_rejection(refusal.http_status)
        return JsonResponse(error_body(refusal.code, refusal.message, refusal.details), status=refusal.http_status,
                            headers={"Retry-After": str(refusal.retry_after)})
    response = StreamingHttpResponse(_released_after(_events(_last_event_id(request), period), lease),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold events back
    return response


async def _released_after(events: AsyncIterator[str], lease: connection_limits.Lease) -> AsyncIterator[str]:
    metrics.SSE_OPEN.inc()
    try:
        async for chunk in events:
            yield chunk
    finally:
        metrics.SSE_OPEN.dec()
        await connection_limits.arelease(lease)


async def _viewer(request: HttpRequest) -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return await user_for_token(credentials.strip())
    token = token_from_query(request.META.get("QUERY_STRING", ""))
    if token is not None:
        return await user_for_token(token)
    return viewer_or_refuse(await session_user(request))


def _last_event_id(request: HttpRequest) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId")
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


class _StreamViewer:
    """Holds only the newest board not yet written: a slow client skips boards instead of queueing them."""

    def __init__(self) -> None:
        self.pending: dict | None = None
        self.wake = asyncio.Event()
        self.ended = asyncio.Event()
        self.stopping = False

    async def push(self, event: dict) -> None:
        self.pending = event
        self.wake.set()

    async def going_away(self) -> None:
        """The server is shutting down: end the stream (the client reconnects after `retry:`), counts released."""
        self.stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(self.ended.wait(), relay.GOING_AWAY_WAIT_SECONDS)
        except asyncio.TimeoutError:
            pass


async def _events(last_event_id: int | None, period: str) -> AsyncIterator[str]:
    board_relay, viewer = relay.for_this_loop(), _StreamViewer()
    try:
        yield f"retry: {settings.LIVE_SSE_RETRY_MS}\n\n"
        board = await board_relay.join(viewer, period)
        sent = relay.LatestBoard(board)
        # An id equal to the current version means "I have this board", unless the day or week rolled over since
        # that version was written: the client may hold the previous window's board under the same id.
        if last_event_id != board["version"] or board.get("quiet_window"):
            yield board["sse"]
        while True:
            try:
                await asyncio.wait_for(viewer.wake.wait(), settings.LIVE_SSE_KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            viewer.wake.clear()
            if viewer.stopping:
                return
            if sent.take(viewer.pending):
                yield viewer.pending["sse"]
    finally:
        board_relay.leave(viewer)
        viewer.ended.set()
