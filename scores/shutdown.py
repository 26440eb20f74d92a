"""Closing live viewers cleanly when daphne stops: the hooks into Twisted's shutdown that the relay uses.

daphne offers an application no shutdown event and no way to send close code 1001, so both go through the
reactor (scores.relay calls these; everything else here is daphne's and Twisted's internals, kept in one place).
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable

CLOSE_GOING_AWAY = 1001


def close_viewers_on_daphne_shutdown(going_away: Callable[[], Awaitable[None]]) -> None:
    """Under daphne, run `going_away` (close this process's viewers) before the reactor stops (SIGTERM, SIGINT).

    Left alone, daphne drops every socket without a close frame and never sends the consumers a disconnect (its
    own kill_all_applications trigger even fails with a KeyError when an idle HTTP connection is open), so
    clients see 1006 and the live-connection counts stay taken until their TTL. The reactor waits for the
    Deferred returned by a "before shutdown" trigger.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not getattr(reactor, "running", False):
        return  # not daphne (tests, other servers)
    from twisted.internet import defer

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.Deferred.fromFuture(asyncio.ensure_future(going_away()))
    )


def send_going_away_frames() -> None:
    """Send close code 1001 to every open WebSocket of this daphne process.

    Not through ASGI: daphne hands an application's websocket.close to autobahn's sendClose, which accepts only
    1000 and 3000-4999. The daphne Server is found through its own shutdown trigger (it keeps no global).
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    event = getattr(reactor, "_eventTriggers", {}).get("shutdown")
    # While the "before" phase runs, the triggers already called sit in finishedBefore.
    for trigger, *_ in [*getattr(event, "finishedBefore", []), *getattr(event, "before", [])]:
        for protocol in list(getattr(getattr(trigger, "__self__", None), "connections", None) or ()):
            if hasattr(protocol, "sendCloseFrame") and protocol.state == protocol.STATE_OPEN:
                protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server shutting down")
