from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from scores import leaderboard


def board(request: HttpRequest) -> HttpResponse:
    """The public board page, rendered on the server so it shows without JavaScript."""
    return render(request, "scores/board.html", {"board": leaderboard.top(10)})
