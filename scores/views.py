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


def board(request: HttpRequest) -> HttpResponse:
    """The board page, rendered on the server so it shows without JavaScript; board.js then keeps it live."""
    top = leaderboard.top(BOARD_SIZE)
    context = {
        "board": top,
        "me_id": str(request.user.pk) if request.user.is_authenticated else "",
        "live_enabled": request.user.is_authenticated or _anonymous_live_allowed(),
        "ws_path": WEBSOCKET_PATH,
        "mine": _own_standing(request, top),
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


def _own_standing(request: HttpRequest, top: leaderboard.Board) -> dict | None:
    if not request.user.is_authenticated:
        return None
    me_id = str(request.user.pk)
    in_top = any(entry.user_id == me_id for entry in top.entries)
    rank = None if in_top else leaderboard.rank_of(request.user)
    score = User.objects.values_list("score", flat=True).get(pk=request.user.pk)
    return {"in_top": in_top, "rank": rank, "score": score}


def _anonymous_live_allowed() -> bool:
    # The WebSocket refuses anonymous viewers unless the live-push setting allows public boards.
    return bool(getattr(settings, "LIVE_ALLOW_ANONYMOUS", False))
