"""One member of the board group per server process, relaying each broadcast to every local viewer.

Stock Channels gives every socket its own layer channel: a broadcast to N viewers then costs N deserialisations,
N task wake-ups and N dispatches (STACK.md measured 0.3-0.6 ms of CPU per delivered message, 9 s at 5,000
viewers). Here the layer delivers a broadcast once per process, to this relay, and the relay hands the text built
once by scores.broadcast to each local WebSocket and SSE viewer: per viewer, a version check and a socket write.
Latest wins: if boards arrive faster than the process can write them, viewers get the newest and skip the ones in
between, so a loaded server sends fewer, fresher messages instead of falling behind. The relay also remembers the
latest board, so a new viewer's snapshot costs no database query.

Periods: each viewer watches one period (all-time, daily or weekly). The relay keeps the latest board of each period
and hands a board only to that period's viewers. A daily or weekly board that nobody changes still ends at midnight
UTC: a viewer joining after the day or week rolled over gets a fresh read, and the idle resync re-reads the boards
being watched, so the new (empty) board reaches everyone within LIVE_RESYNC_SECONDS.

Ranks: a signed-in viewer hears its own all-time rank at once when its own score changes (scores.broadcast sends
it to the user's group). Others passing it change its rank too, and nobody can afford a message to every user
below a climber, so every LIVE_RANK_REFRESH_SECONDS the relay reads the ranks of this process's signed-in viewers
in one batch and tells those whose rank or score moved.
"""

import asyncio
import logging
from typing import Any, Protocol
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from scoreboard_project.outage_log import OutageLog
from scores import broadcast, frames, leaderboard, shutdown
from scores.leaderboard import periods

logger = logging.getLogger(__name__)

# Writes leave the process only when the event loop gets control back: yield every this many viewers.
_YIELD_EVERY = 100
# On shutdown, how long each viewer may take to close cleanly (WebSocket close handshake, end of an SSE stream).
GOING_AWAY_WAIT_SECONDS = 2
_LAYER_RETRY_SECONDS = 1
CLOSE_GOING_AWAY = shutdown.CLOSE_GOING_AWAY


class Viewer(Protocol):
    async def push(self, event: dict) -> None: ...

    async def going_away(self) -> None: ...

    async def banned(self) -> None: ...


class RankedViewer(Viewer, Protocol):
    async def show_rank(self, *, rank: int, score: int, version: int) -> None: ...


class UnknownPeriod(ValueError):
    """A live client asked for a period that has no board."""


def requested_period(query_string: bytes | str) -> str:
    """The `?period=` of a live request (all-time when absent). Raises UnknownPeriod."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    values = parse_qs(query_string, keep_blank_values=True).get("period")
    period = values[-1] if values else leaderboard.ALL_TIME
    if period not in leaderboard.PERIODS:
        raise UnknownPeriod(f"Unknown period {period[:40]!r}: expected one of {', '.join(leaderboard.PERIODS)}.")
    return period


class Relay:
    def __init__(self) -> None:
        self.viewers: set[Viewer] = set()
        self.boards: dict[str, dict] = {}  # period -> the latest board event
        self._watching: dict[str, set[Viewer]] = {period: set() for period in leaderboard.PERIODS}
        self._ranked: dict[RankedViewer, str] = {}  # signed-in WebSocket viewer -> user id (for its rank)
        self._owners: dict[Viewer, str] = {}  # every signed-in viewer -> user id (for a ban)
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._changed_periods: set[str] = set()
        self._layer_down = OutageLog(logger, "The live relay cannot reach its channel layer or read the board")
        self._resync_down = OutageLog(logger, "The live relay's resync failed")

    @property
    def latest(self) -> dict | None:
        """The latest all-time board."""
        return self.boards.get(leaderboard.ALL_TIME)

    async def join(self, viewer: Viewer, period: str = leaderboard.ALL_TIME, *, user_id: Any = None) -> dict:
        """Add `viewer` to `period`'s viewers; return that board (its snapshot). Later ones arrive via viewer.push.
        A signed-in viewer names its user, so that a ban ends it (viewer.banned)."""
        self.viewers.add(viewer)
        if user_id is not None:
            self._owners[viewer] = str(user_id)
        self._watching[period].add(viewer)
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.get_running_loop().create_task(self._run())
        await self._ready.wait()
        board = self.boards.get(period)
        # No board yet (a period nobody watched, or the layer is unreachable), or the day/week has rolled over.
        if board is None or board.get("window", period) != periods.current(period).key:
            await self._resync((period,))
        return self.boards[period]

    def follow_rank(self, viewer: RankedViewer, user_id: Any) -> None:
        """Keep `viewer` told of its user's all-time rank (see the module doc)."""
        self._ranked[viewer] = str(user_id)

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        self._ranked.pop(viewer, None)  # type: ignore[call-overload]
        self._owners.pop(viewer, None)
        for watching in self._watching.values():
            watching.discard(viewer)

    async def going_away(self) -> None:
        """The server is stopping: every local viewer closes cleanly (WebSocket 1001, SSE stream ended) and gives
        back its connection counts."""
        viewers = list(self.viewers)
        if viewers:
            logger.info("Shutting down: closing %d live connection(s) with 'going away'", len(viewers))
        shutdown.send_going_away_frames()
        await asyncio.gather(*(viewer.going_away() for viewer in viewers), return_exceptions=True)

    async def _run(self) -> None:
        layer = get_channel_layer()
        broadcast.serve_from_this_loop()
        try:
            channel = await self._subscribe(layer)
        finally:
            self._ready.set()
        fan_out = asyncio.get_running_loop().create_task(self._fan_out())
        ranks = asyncio.get_running_loop().create_task(self._refresh_ranks())
        pending = None
        try:
            while True:
                # One receive stays pending across idle ticks: cancelling it would drop a pub/sub subscription.
                pending = pending or asyncio.ensure_future(layer.receive(channel))
                done, _ = await asyncio.wait({pending}, timeout=settings.LIVE_RESYNC_SECONDS)
                if not done:
                    await self._survive(self._idle_tick(layer, channel))
                    continue
                received, pending = pending, None
                try:
                    event = received.result()
                except Exception:  # noqa: BLE001 - the layer's connection failed; the broadcasts meanwhile are lost
                    self._layer_down.failed()  # then rejoin and re-read the boards
                    await asyncio.sleep(_LAYER_RETRY_SECONDS)
                    await self._survive(self._idle_tick(layer, channel))
                    continue
                self._layer_down.recovered()
                if event.get("type") == broadcast.BOARD_EVENT and _newer(event, self.boards.get(_period_of(event))):
                    self._show(event)
                elif event.get("type") == broadcast.BAN_EVENT:
                    await self._end_viewers_of(event["user_id"])
        finally:
            fan_out.cancel()
            ranks.cancel()
            if pending is not None:
                pending.cancel()
            await layer.group_discard(broadcast.BOARD_GROUP, channel)

    async def _subscribe(self, layer: Any) -> str:
        # Retried until it works: a relay that ended here would leave this process's viewers unfed until another
        # viewer joined. Meanwhile viewers are let in; each join reads its snapshot itself.
        channel = None
        while True:
            try:
                channel = channel or await layer.new_channel()
                await layer.group_add(broadcast.BOARD_GROUP, channel)
                # Joined before reading, so no broadcast can fall between this snapshot and the first push.
                board = await database_sync_to_async(broadcast.current_board)()
            except Exception:  # noqa: BLE001 - the layer or the board's store is down: retry
                self._layer_down.failed()
                self._ready.set()
                await asyncio.sleep(_LAYER_RETRY_SECONDS)
                continue
            self._layer_down.recovered()
            self.boards[leaderboard.ALL_TIME] = board.as_event()
            return channel

    async def _survive(self, step: Any) -> None:
        # One failed database or Redis read must not end the relay: its viewers would hear nothing more, silently.
        try:
            await step
        except Exception:  # noqa: BLE001 - retried at the next idle tick
            self._resync_down.failed()
        else:
            self._resync_down.recovered()

    async def _refresh_ranks(self) -> None:
        while True:
            await asyncio.sleep(settings.LIVE_RANK_REFRESH_SECONDS)
            following = dict(self._ranked)
            if not following:
                continue
            try:
                version, ranks = await database_sync_to_async(leaderboard.ranks_of)(sorted(set(following.values())))
            except Exception:  # noqa: BLE001 - a failed read is retried at the next tick
                logger.exception("Could not refresh the live viewers' ranks")
                continue
            for viewer, user_id in following.items():
                if user_id in ranks and viewer in self._ranked:
                    rank, score = ranks[user_id]
                    try:
                        await viewer.show_rank(rank=rank, score=score, version=version)
                    except Exception:  # noqa: BLE001 - one broken socket must not stop the others
                        logger.exception("Could not send a rank update to a viewer")

    async def _end_viewers_of(self, user_id: str) -> None:
        for viewer in [viewer for viewer, owner in self._owners.items() if owner == user_id]:
            self.leave(viewer)
            try:
                await viewer.banned()
            except Exception:  # noqa: BLE001 - one broken socket must not keep the others open
                logger.exception("Could not end a banned user's live connection")

    def _show(self, event: dict) -> None:
        period = _period_of(event)
        self.boards[period] = event
        self._changed_periods.add(period)
        self._changed.set()

    async def _idle_tick(self, layer: Any, channel: str) -> None:
        # Rejoin (the core layer expires group members after a day) and compare with the database: a broadcast
        # lost on the way (pub/sub drops messages while a connection is down) is repaired within one tick, and a
        # daily or weekly board is replaced by the new day's or week's once its window has rolled over.
        await layer.group_add(broadcast.BOARD_GROUP, channel)
        watched = tuple(period for period, watching in self._watching.items() if watching)
        if watched:
            await self._resync(watched)

    async def _resync(self, chosen: tuple[str, ...]) -> None:
        fresh = await database_sync_to_async(broadcast.current_boards)(chosen)
        for period, message in fresh.items():
            event, shown = message.as_event(), self.boards.get(period)
            if shown is None:
                self.boards[period] = event
            elif event["window"] != shown.get("window", period):
                logger.info("The %s board rolled over to %s", period, event["window"])
                self._show(event)
            # Not only a newer version: a ban changes the board and adds no ledger row.
            elif event["version"] >= shown["version"] and event["digest"] != shown["digest"]:
                logger.warning("The live %s board was behind the database (a lost broadcast?): resent version %s",
                               period, event["version"])
                self._show(event)

    async def _fan_out(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            changed, self._changed_periods = self._changed_periods, set()
            for period in changed:
                await self._push_to(period)

    async def _push_to(self, period: str) -> None:
        for index, viewer in enumerate(list(self._watching[period]), start=1):
            event = self.boards[period]  # a newer board arrived meanwhile: the rest get that one straight away
            try:
                await viewer.push(event)
            except Exception:  # noqa: BLE001 - one broken socket must not stop the others' updates
                logger.exception("Could not push the board to a viewer")
            if index % _YIELD_EVERY == 0:
                await asyncio.sleep(0)


def ws_frame(event: dict) -> bytes:
    """The board's WebSocket frame, built by the first viewer that needs it and shared by the rest."""
    frame = event.get("ws_frame")
    if frame is None:
        frame = event["ws_frame"] = frames.text_frame(event["ws"])
    return frame


def _period_of(event: dict) -> str:
    return event.get("period", leaderboard.ALL_TIME)


def _newer(event: dict, latest: dict | None) -> bool:
    # Equal versions with different boards: the later flush read later, so it wins (e.g. a username change).
    if latest is None:
        return _period_of(event) in leaderboard.PERIODS
    # A board read just before midnight but delivered after the relay saw the new day is not newer. Window keys
    # sort in time order (daily:YYYY-MM-DD, weekly:YYYY-Www).
    if event.get("window", "") < latest.get("window", ""):
        return False
    return event["version"] > latest["version"] or (
        event["version"] == latest["version"] and event["digest"] != latest["digest"]
    )


class LatestBoard:
    """A viewer's record of the board it last got: skips repeats, lets a same-version correction through."""

    def __init__(self, event: dict) -> None:
        self.event = event

    def take(self, event: dict) -> bool:
        """True if `event` should be sent (and it is now the last one)."""
        if event is self.event or event["version"] < self.event["version"]:
            return False
        self.event = event
        return True


_relays: dict[asyncio.AbstractEventLoop, Relay] = {}


def for_this_loop() -> Relay:
    """The relay of the running event loop (one per server process; one per test loop in tests)."""
    loop = asyncio.get_running_loop()
    for stale in [other for other in _relays if other.is_closed()]:
        del _relays[stale]
    if loop not in _relays:
        _relays[loop] = Relay()
        shutdown.close_viewers_on_daphne_shutdown(_relays[loop].going_away)
    return _relays[loop]
