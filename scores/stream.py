"""The live board as Server-Sent Events: GET /api/v1/leaderboard/stream.

An async view fed by the process's board relay (scores/relay.py), so under daphne a client costs a coroutine and a
queue, not a thread. Same
credentials as the WebSocket (Bearer header, ?token= or the session), same coalesced board texts.
"""

import asyncio
import json
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
    """Stream `leaderboard_update` events of `?period=` (all-time by default): a snapshot, then every change. An
    unknown period is a 400."""
    if request.method != "GET":
        return _refused(405, "method_not_allowed", "Method not allowed.", headers={"Allow": "GET"})
    try:
        period = relay.requested_period(request.META.get("QUERY_STRING", ""))
    except relay.UnknownPeriod as refusal:
        return _refused(400, "invalid_period", str(refusal), {"allowed": list(leaderboard.PERIODS)})
    try:
        viewer = await _viewer(request)
    except Refused as refusal:
        if refusal.code == "banned":
            return _refused(403, refusal.code, refusal.message)
        return _refused(401, refusal.code, refusal.message, headers={"WWW-Authenticate": "Bearer"})
    try:
        lease = await _take_lease(user_id=getattr(viewer, "pk", None), ip=client_ip(request))
    except connection_limits.TooManyConnections as refusal:
        return _refused(refusal.http_status, refusal.code, refusal.message, refusal.details,
                        headers={"Retry-After": str(refusal.retry_after)})
    gone = getattr(request, "scope", {}).get("scoreboard.client_gone") or asyncio.Event()
    response = StreamingHttpResponse(_LeasedStream(_events(period, getattr(viewer, "pk", None)), lease, gone),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold events back
    return response


async def _take_lease(*, user_id: Any, ip: str) -> connection_limits.Lease:
    # Django cancels the view when the client leaves; the count is taken in a thread that finishes regardless, so
    # a lease taken after the client left is given back.
    taking = asyncio.ensure_future(connection_limits.aacquire(user_id=user_id, ip=ip))
    try:
        return await asyncio.shield(taking)
    except asyncio.CancelledError:
        taking.add_done_callback(_give_back_if_taken)
        raise


def _give_back_if_taken(taking: asyncio.Future) -> None:
    if not taking.cancelled() and taking.exception() is None:
        asyncio.ensure_future(connection_limits.arelease(taking.result()))


class _LeasedStream:
    """The events of one stream and the connection lease they hold, given back exactly once.

    When the client leaves, Django cancels the request's task once; a view inside sync_to_async then carries on,
    and the response it returns is either dropped unsent or streamed to the closed connection for ever. So a guard
    waits for the client to be gone (scoreboard_project/asgi.py's `scoreboard.client_gone`): it ends the stream, or
    gives the lease back itself if the stream never started. A stream that ends first, or a response Django closes,
    stops the guard.
    """

    def __init__(self, events: AsyncIterator[str], lease: connection_limits.Lease, gone: asyncio.Event) -> None:
        self._events, self._lease, self._gone = events, lease, gone
        self._streaming: asyncio.Task | None = None
        self._loop = asyncio.get_running_loop()
        self._guard = asyncio.create_task(self._end_when_client_gone())

    async def __aiter__(self) -> AsyncIterator[str]:
        self._streaming = asyncio.current_task()
        metrics.SSE_OPEN.inc()
        try:
            if not self._gone.is_set():
                async for chunk in self._events:
                    yield chunk
        finally:
            self._guard.cancel()
            metrics.SSE_OPEN.dec()
            await connection_limits.arelease(self._handed_back())

    def close(self) -> None:
        # Django calls this from a worker thread.
        self._loop.call_soon_threadsafe(self._guard.cancel)
        connection_limits.release(self._handed_back())

    async def _end_when_client_gone(self) -> None:
        await self._gone.wait()
        if self._streaming is not None:
            self._streaming.cancel()  # its `finally` gives the lease back
        else:
            await connection_limits.arelease(self._handed_back())

    def _handed_back(self) -> connection_limits.Lease:
        lease, self._lease = self._lease, connection_limits.Lease()
        return lease


def _refused(status: int, code: str, message: str, details: dict | None = None, *,
             headers: dict | None = None) -> JsonResponse:
    metrics.count_rejection(status, code)
    return JsonResponse(error_body(code, message, details), status=status, headers=headers)


async def _viewer(request: HttpRequest) -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return await user_for_token(credentials.strip())
    token = token_from_query(request.META.get("QUERY_STRING", ""))
    if token is not None:
        return await user_for_token(token)
    return viewer_or_refuse(await session_user(request))


_BANNED_EVENT = f"event: error\ndata: {json.dumps(error_body('banned', 'This account is banned.'))}\n\n"


class _StreamViewer:
    """Holds only the newest board not yet written: a slow client skips boards instead of queueing them."""

    def __init__(self) -> None:
        self.pending: dict | None = None
        self.wake = asyncio.Event()
        self.ended = asyncio.Event()
        self.stopping = False
        self.was_banned = False

    async def push(self, event: dict) -> None:
        self.pending = event
        self.wake.set()

    async def banned(self) -> None:
        """The user was banned while watching (scores/relay.py): an `error` event, then the stream ends."""
        self.was_banned = True
        self.wake.set()

    async def going_away(self) -> None:
        """The server is shutting down: end the stream (the client reconnects after `retry:`), counts released."""
        self.stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(self.ended.wait(), relay.GOING_AWAY_WAIT_SECONDS)
        except asyncio.TimeoutError:
            pass


async def _events(period: str, user_id: Any) -> AsyncIterator[str]:
    board_relay, viewer = relay.for_this_loop(), _StreamViewer()
    try:
        yield f"retry: {settings.LIVE_SSE_RETRY_MS}\n\n"
        board = await board_relay.join(viewer, period, user_id=user_id)
        sent = relay.LatestBoard(board)
        # Always, even to a client resuming with Last-Event-ID equal to this version: a ban or a day's rollover
        # changes the board without a new version, so the id cannot say the client holds this board.
        yield board["sse"]
        while True:
            try:
                await asyncio.wait_for(viewer.wake.wait(), settings.LIVE_SSE_KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            viewer.wake.clear()
            if viewer.was_banned:  # the client's reconnect then gets the 403
                yield _BANNED_EVENT
                return
            if viewer.stopping:
                return
            if sent.take(viewer.pending):
                yield viewer.pending["sse"]
    finally:
        board_relay.leave(viewer)
        viewer.ended.set()
