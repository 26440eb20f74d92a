"""The live board over WebSocket: read-only; boards come through the process's relay, ranks through a user group.

The consumer touches the database only at connect (credentials, the user's rank). Board and rank messages are
texts built once per broadcast by scores.broadcast, so relaying one costs a version check and a socket write.
"""

import asyncio
import json
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from scoreboard_project import metrics
from scoreboard_project.client_ip import client_ip_from_scope
from scores import broadcast, connection_limits, frames, relay
from scores.live_auth import Refused, origin_allowed, token_from_query, user_for_token, viewer_or_refuse

logger = logging.getLogger(__name__)

# Close codes. A refusal before the handshake completes (a foreign Origin, an unknown period, the connection limits)
# becomes an HTTP 403 (the ASGI server cannot send a close frame on a socket it never opened); refused credentials
# open the socket first, so the browser sees 4401/4403 (see _refuse).
CLOSE_BAD_REQUEST = 4400  # an unknown ?period=
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403  # also a banned user
CLOSE_NOT_FOUND = 4404
CLOSE_GOING_AWAY = relay.CLOSE_GOING_AWAY  # the server is shutting down (SIGTERM)
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # a dependency failed while the connection was opening

_PONG = json.dumps({"type": "pong"})


def _error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"code": code, "message": message, "details": {}}})


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class LeaderboardConsumer(AsyncWebsocketConsumer):
    board: relay.LatestBoard | None = None
    rank_version = -1
    rank_shown: tuple[int, int] | None = None
    board_relay: relay.Relay | None = None
    lease: connection_limits.Lease | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.released = asyncio.Event()

    async def dispatch(self, message: dict) -> None:
        # Stock AsyncConsumer.dispatch (channels >= 4.2) hops to a thread to close old database connections before
        # every message; this consumer does no database work per message, so the hop is pure cost (STACK.md).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            # An ASGI server cancelling the application (daphne's kill_all_applications on shutdown, when it works),
            # or an error in a handler, comes with no websocket.disconnect: give the connection counts back here,
            # or they stay until their TTL (with Redis, for as long as this process heartbeats its share).
            await asyncio.shield(self.disconnect(CLOSE_GOING_AWAY))
            raise

    async def going_away(self) -> None:
        """The server is stopping and has sent this socket a 1001 close frame (scores/shutdown.py): the client's
        answer arrives as websocket.disconnect and releases the counts; release them here if it never comes."""
        try:
            await asyncio.wait_for(self.released.wait(), relay.GOING_AWAY_WAIT_SECONDS)
        except asyncio.TimeoutError:
            await self.disconnect(CLOSE_GOING_AWAY)

    async def connect(self) -> None:
        try:
            period = relay.requested_period(self.scope.get("query_string", b""))
        except relay.UnknownPeriod:
            metrics.count_rejection(400, "invalid_period")
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        try:
            user, subprotocol = await self._authenticate()
        except Refused as refusal:
            await self._refuse(refusal)
            return
        try:
            self.lease = await connection_limits.aacquire(
                user_id=user.pk if user else None, ip=client_ip_from_scope(self.scope)
            )
        except connection_limits.TooManyConnections as refusal:
            metrics.count_rejection(refusal.http_status)
            await self.close(code=refusal.close_code)
            return
        try:
            await self._open(user, subprotocol, period)
        except Exception:  # noqa: BLE001 - e.g. the channel layer or the database unreachable mid-connect
            # Channels calls disconnect() only for a socket that got as far as a websocket.disconnect; without this
            # the lease (and the relay's hold on this consumer) would outlive the failed connection.
            logger.exception("Could not open a live connection")
            await self.disconnect(CLOSE_TRY_AGAIN_LATER)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def _refuse(self, refusal: Refused) -> None:
        if refusal.code == "forbidden_origin":
            metrics.count_rejection(403, refusal.code)
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)  # the handshake fails: a foreign page learns nothing
            return
        code = CLOSE_FORBIDDEN_ORIGIN if refusal.code == "banned" else CLOSE_UNAUTHORIZED
        metrics.count_rejection(403 if code == CLOSE_FORBIDDEN_ORIGIN else 401, refusal.code)
        # A browser sees a refused handshake only as 1006, like a network failure, and would retry forever: open
        # the socket, say why, and close with the code that tells live.js to stop and ask the user to sign in.
        offered = self.scope.get("subprotocols") or []
        await self.accept("bearer" if "bearer" in offered else None)
        await self.send(text_data=_error(refusal.code, refusal.message))
        await self.close(code=code)

    async def _open(self, user: Any, subprotocol: str | None, period: str) -> None:
        if user is not None:
            self.groups = [broadcast.user_group(user.pk)]
            await self.channel_layer.group_add(self.groups[0], self.channel_name)
        await self.accept(subprotocol)
        metrics.WEBSOCKETS_OPEN.inc()
        self.counted_open = True
        self.board_relay = relay.for_this_loop()
        board = await self.board_relay.join(self, period, user_id=user.pk if user is not None else None)
        self.board = relay.LatestBoard(board)
        await self.send(text_data=board["ws"])
        if user is not None:
            rank = await database_sync_to_async(broadcast.rank_message)(user, board["version"])
            if rank is not None:
                await self._send_rank(rank, board["version"])
            self.board_relay.follow_rank(self, user.pk)

    async def _authenticate(self) -> tuple[Any, str | None]:
        origin = _header(self.scope, b"origin")
        if origin is not None and not origin_allowed(origin):
            raise Refused("forbidden_origin", "This Origin is not allowed.")
        subprotocols = self.scope.get("subprotocols") or []
        if len(subprotocols) == 2 and subprotocols[0].lower() == "bearer":
            return await user_for_token(subprotocols[1]), "bearer"
        token = token_from_query(self.scope.get("query_string", b""))
        if token is not None:
            return await user_for_token(token), None
        # A session cookie counts only with an allowed Origin: browsers always send one, so a socket without it is
        # not a browser page and has no business riding a cookie (cross-site WebSocket hijacking).
        session_user = self.scope.get("user") if origin is not None else None
        return viewer_or_refuse(session_user), None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.close(code=CLOSE_UNSUPPORTED_DATA)
            return
        if len(text_data.encode()) > settings.LIVE_MAX_FRAME_BYTES:  # bytes, not characters: "€" is three
            await self.close(code=CLOSE_TOO_BIG)
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser's limit
            await self.send(text_data=_error("bad_json", "Frames must be JSON objects."))
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send(text_data=_PONG)
        else:
            await self.send(text_data=_error("unknown_type", 'The only message a client may send is {"type": "ping"}.'))

    async def push(self, event: dict) -> None:
        """A board from this process's relay (not through this socket's own layer channel: see scores/relay.py)."""
        if self.board is not None and self.board.take(event):
            write_frame = frames.writer_for(self.scope)
            if write_frame is not None:
                write_frame(relay.ws_frame(event))
            else:
                await self.base_send({"type": "websocket.send", "text": event["ws"]})

    async def disconnect(self, code: int) -> None:
        if self.__dict__.pop("counted_open", False):
            metrics.WEBSOCKETS_OPEN.dec()
        if self.board_relay is not None:
            self.board_relay.leave(self)
        lease, self.lease = self.lease, None
        if lease is not None:
            await connection_limits.arelease(lease)
        self.released.set()

    async def banned(self) -> None:
        """The user was banned while watching (scores/relay.py): say so, as at connect, and close with 4403."""
        await self.send(text_data=_error("banned", "This account is banned."))
        await self.close(code=CLOSE_FORBIDDEN_ORIGIN)

    async def rank_update(self, event: dict) -> None:
        """The user's own score changed (scores.broadcast, through the user's group)."""
        # The same version too: a ban moves players without adding a ledger row.
        if event["version"] > self.rank_version or (
            event["version"] == self.rank_version and _rank_and_score(event["text"]) != self.rank_shown
        ):
            await self._send_rank(event["text"], event["version"])

    async def show_rank(self, *, rank: int, score: int, version: int) -> None:
        """The relay's periodic re-read (scores/relay.py): sent only if others moved this user's rank."""
        if version >= self.rank_version and (rank, score) != self.rank_shown:
            await self._send_rank(broadcast.rank_text(rank=rank, score=score, version=version), version)

    async def _send_rank(self, text: str, version: int) -> None:
        self.rank_version, self.rank_shown = version, _rank_and_score(text)
        await self.send(text_data=text)


def _rank_and_score(rank_text: str) -> tuple[int, int]:
    shown = json.loads(rank_text)
    return shown["rank"], shown["score"]


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused with a clear code instead of a routing exception."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)
