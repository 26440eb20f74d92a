"""The HTML pages: the live board and the play panel. Both read through scores.leaderboard; writes go via the API."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from scores import leaderboard
from scores.models import ActionType

User = get_user_model()

BOARD_SIZE = 10
WEBSOCKET_PATH = "/ws/scoreboard"
PERIOD_LABELS = {"all-time": "All time", "weekly": "This week", "daily": "Today"}


def board(request: HttpRequest) -> HttpResponse:
    """The board page, rendered on the server so it shows without JavaScript; board.js then keeps it live."""
    period = request.GET.get("period", leaderboard.ALL_TIME)
    if period not in leaderboard.PERIODS:
        period = leaderboard.ALL_TIME
    top = leaderboard.top(BOARD_SIZE, period=period)
    context = {
        "board": top,
        "period": period,
        "periods": _periods(),
        "me_id": str(request.user.pk) if request.user.is_authenticated else "",
        "live_enabled": request.user.is_authenticated or _anonymous_live_allowed(),
        "ws_path": WEBSOCKET_PATH,
        "mine": _own_standing(request, top, period),
    }
    return render(request, "scores/board.html", context)


@login_required
@ensure_csrf_cookie
def play(request: HttpRequest) -> HttpResponse:
    """The play panel: the catalogue, and the signed-in user's score; play.js drives the JSON API with the session."""
    context = {
        "action_types": ActionType.objects.filter(is_active=True).order_by("points", "code"),
        "score": User.objects.values_list("score", flat=True).get(pk=request.user.pk),
        "rank": leaderboard.rank_of(request.user),
    }
    return render(request, "scores/play.html", context)


def _periods() -> list[tuple[str, str]]:
    order = list(PERIOD_LABELS)
    codes = sorted(leaderboard.PERIODS, key=lambda code: order.index(code) if code in order else len(order))
    return [(code, PERIOD_LABELS.get(code, code)) for code in codes]


def _own_standing(request: HttpRequest, top: leaderboard.Board, period: str) -> dict | None:
    if not request.user.is_authenticated:
        return None
    me_id = str(request.user.pk)
    if any(entry.user_id == me_id for entry in top.entries):
        return {"in_top": True, "rank": None, "score": None}
    window = leaderboard.around(request.user, 1, period=period)
    mine = next((entry for entry in window.entries if entry.user_id == me_id), None)
    return {"in_top": False, "rank": mine.rank if mine else None, "score": mine.score if mine else 0}


def _anonymous_live_allowed() -> bool:
    # The WebSocket refuses anonymous viewers unless the live-push setting allows public boards.
    return settings.LIVE_ALLOW_ANONYMOUS
