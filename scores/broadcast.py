"""Live push: the one place that talks to the channel layer from sync code.

A committed score change calls `score_changed`. Changes are coalesced for LIVE_COALESCE_MS; then one flush reads
the top 10 of every period (all-time, daily, weekly) once, builds each board's WebSocket and SSE texts once, sends
to BOARD_GROUP each board whose top 10 differs from the last one sent for that period, and sends a rank_update
(all-time rank) to each user whose score or all-time top-10 rank changed. With REDIS_URL the window is shared by
every process through a Redis lock, so a change is broadcast once, not once per process (scores/coalescing.py).
"""

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from scoreboard_project import metrics
from scores import coalescing, leaderboard
from scores.leaderboard import periods

logger = logging.getLogger(__name__)

BOARD_GROUP = "scoreboard.board"
BOARD_EVENT = "board.update"
RANK_EVENT = "rank.update"
BAN_EVENT = "account.banned"
BOARD_SIZE = 10


def user_group(user_id: Any) -> str:
    """The group of one user's sockets, for rank_update."""
    return f"scoreboard.user.{str(user_id).replace('-', '')}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class BoardMessage:
    """One board as its viewers receive it. The WebSocket and SSE texts are built on first use, once: a flush only
    uses them for the periods whose top 10 changed."""

    board: leaderboard.Board
    entries: list[dict]
    entries_json: str
    window: str  # e.g. "daily:2026-11-22": a new one means the day or week rolled over

    @property
    def version(self) -> int:
        return self.board.version

    @property
    def period(self) -> str:
        return self.board.period

    @cached_property
    def ws(self) -> str:
        stamp = (self.board.last_updated or timezone.now()).isoformat()
        return _dumps({"type": "top_scores_update", "payload": self.entries, "timestamp": stamp,
                       "version": self.version, "period": self.period})

    @cached_property
    def sse(self) -> str:
        return f"event: leaderboard_update\nid: {self.version}\ndata: {_dumps(self.board.as_json())}\n\n"

    def as_event(self) -> dict:
        digest = hashlib.blake2b(self.entries_json.encode(), digest_size=8).hexdigest()
        return {"type": BOARD_EVENT, "version": self.version, "digest": digest, "ws": self.ws, "sse": self.sse,
                "period": self.period, "window": self.window}


def board_message(board: leaderboard.Board, window: periods.Window | None = None) -> BoardMessage:
    """The board as the message every viewer of its period receives (texts built once, on first use)."""
    entries = [entry.as_json() for entry in board.entries]
    return BoardMessage(board, entries, _dumps(entries), board.period if window is None else window.key)


def current_board(period: str = leaderboard.ALL_TIME) -> BoardMessage:
    """The period's current top 10 as a message, read from one database snapshot. Raises ValueError (period)."""
    return current_boards((period,))[period]


def current_boards(chosen: Iterable[str] = leaderboard.PERIODS) -> dict[str, BoardMessage]:
    """The current top 10 of each chosen period (all periods by default), all from one database snapshot."""
    # From the database a board is several queries; under READ COMMITTED a commit between them could pair old rows
    # with the new version. One snapshot rules that out. A Redis board is one script call: no transaction needed
    # (and none is paid for: the flush runs in busy WSGI workers, where every round trip waits for the GIL too).
    if connection.vendor != "postgresql" or connection.in_atomic_block or leaderboard.answers_from_redis():
        return _read_boards(chosen)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _read_boards(chosen)


def _read_boards(chosen: Iterable[str]) -> dict[str, BoardMessage]:
    windows = {period: periods.current(period) for period in chosen}  # before the read: a board read across
    boards = leaderboard.tops(BOARD_SIZE, windows)  # midnight is resent next tick
    return {period: board_message(boards[period], window) for period, window in windows.items()}


def rank_message(user: Any, version: int) -> str | None:
    """The rank_update text for `user`, or None if they have not scored."""
    rank = leaderboard.rank_of(user)
    if rank is None:
        return None
    return rank_text(rank=rank, score=user.score, version=version)


def rank_text(*, rank: int, score: int, version: int) -> str:
    """A rank_update message as a viewer receives it."""
    return _dumps({"type": "rank_update", "score": score, "rank": rank, "version": version})


def score_changed(*, user_id: Any) -> None:
    """Note a committed score change; the board and ranks go out after the coalescing window. Never raises."""
    try:
        if coalescing.window().note(str(user_id)):
            _flusher.schedule(settings.LIVE_COALESCE_MS / 1000)
    except Exception:  # noqa: BLE001 - a broken push must never fail the write that triggered it
        logger.exception("Could not schedule a live broadcast")


def account_banned(*, user_id: Any) -> None:
    """After a ban commits: every server process ends the user's open WebSockets and SSE streams. Never raises."""
    event = {"type": BAN_EVENT, "user_id": str(user_id)}
    try:
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            _deliver([(BOARD_GROUP, event)])
        else:  # not the flusher's loop, which its own thread may be running: bans are rare, a loop each is fine
            async_to_sync(layer.group_send)(BOARD_GROUP, event)
    except Exception:  # noqa: BLE001 - the ban itself stands; their sockets then last until they reconnect
        logger.exception("Could not tell the live servers about a ban")


def reset() -> None:
    """Forget the pending changes and the last board sent (tests; after restoring a database)."""
    window = coalescing.window()
    window.drain()
    window.forget_last()


def serve_from_this_loop() -> None:
    """Called by consumers and SSE views: this process's viewers live in the running event loop.

    The in-memory channel layer is not thread-safe, so its group_send must run in the viewers' loop.
    """
    global _viewer_loop
    _viewer_loop = asyncio.get_running_loop()


# --- The flush --------------------------------------------------------------------------------------------------


def flush(noted_at: float | None = None) -> None:
    """Send each period's board whose top 10 changed, and the all-time rank of every user noted since the last flush.

    `noted_at` (time.monotonic() of the first commit in the window) feeds the broadcast-lag histogram.
    """
    window = coalescing.window()
    user_ids = window.drain()
    boards = current_boards()
    shown = {period: _as_shown(board) for period, board in boards.items()}
    previous = window.swap_last(shown)
    board_events: list[tuple[str, dict]] = [
        (BOARD_GROUP, board.as_event()) for period, board in boards.items() if previous[period] != shown[period]
    ]
    _deliver(board_events)  # before the ranks are looked up: every viewer is waiting for the board
    metrics.count_broadcast(board_events, noted_at)
    message = boards[leaderboard.ALL_TIME]
    if previous[leaderboard.ALL_TIME] != shown[leaderboard.ALL_TIME]:
        user_ids |= _moved_users(previous[leaderboard.ALL_TIME], message.entries_json)
    rank_events = [(user_group(user_id), {"type": RANK_EVENT, "version": message.version, "text": text})
                   for user_id, text in _rank_texts(user_ids, message).items()]
    _deliver(rank_events)
    metrics.count_rank_updates(rank_events)


def _as_shown(message: BoardMessage) -> str:
    # A daily or weekly board is compared with its window: a new day's board equal to yesterday's last one is
    # still news to viewers showing the new day's (empty) board. The all-time board never rolls over.
    if message.period == leaderboard.ALL_TIME:
        return message.entries_json
    return f"{message.window} {message.entries_json}"


def _rank_texts(user_ids: set[str], message: BoardMessage) -> dict[str, str]:
    # Users on the board already have their rank and score in it: the others cost one batched lookup.
    on_board = {entry["userId"]: entry for entry in json.loads(message.entries_json)}
    texts = {
        user_id: rank_text(rank=entry["rank"], score=entry["score"], version=message.version)
        for user_id, entry in on_board.items() if user_id in user_ids
    }
    others = _valid_ids(user_ids - on_board.keys())
    if others:
        _, ranks = leaderboard.ranks_of(others)
        texts.update({user_id: rank_text(rank=rank, score=score, version=message.version)
                      for user_id, (rank, score) in ranks.items()})
    return texts


def _valid_ids(user_ids: set[str]) -> list[str]:
    valid = []
    for user_id in user_ids:
        try:
            valid.append(str(uuid.UUID(user_id)))
        except ValueError:
            logger.warning("Ignoring a malformed user id in the live push queue: %r", user_id)
    return valid


def _moved_users(previous_json: str | None, current_json: str) -> set[str]:
    # Users who entered, left or moved inside the top 10 have a new rank even if their own score did not change.
    before = {entry["userId"]: entry["rank"] for entry in json.loads(previous_json or "[]")}
    after = {entry["userId"]: entry["rank"] for entry in json.loads(current_json)}
    return {user_id for user_id in before.keys() | after.keys() if before.get(user_id) != after.get(user_id)}


async def _send_all(layer: Any, events: list[tuple[str, dict]]) -> None:
    await asyncio.gather(*(layer.group_send(group, event) for group, event in events))


def _deliver(events: list[tuple[str, dict]]) -> None:
    if not events:
        return
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        loop = _viewer_loop
        if loop is None or not loop.is_running():
            return  # nobody can be listening: in-memory viewers only exist inside a running server loop
        # Not waited for: the loop may be stopping (a server shutting down, a test ending), and a wait for a
        # coroutine it never runs would stall every later flush. Submissions run in order.
        asyncio.run_coroutine_threadsafe(_send_all(layer, events), loop).add_done_callback(_log_failure)
    else:
        _flusher.loop.run_until_complete(_send_all(layer, events))


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("Live broadcast failed", exc_info=future.exception())


_viewer_loop: asyncio.AbstractEventLoop | None = None
_flusher = coalescing.Flusher(flush)
