"""The live board in a real browser: live updates from another player, a server restart, escaping, screenshots."""

import time
from datetime import timedelta

import pytest
from django.db.models import F
from playwright.sync_api import Page, expect

from scores import leaderboard, services
from scores.models import ActionType, ScoreEvent
from tests.browser.conftest import play_via_api, screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ten_players(make_user) -> list:
    """player1 … player10 with 10 … 100 points: a full board."""
    tens = ActionType.objects.create(code="ten", name="Ten", points=10, min_duration_seconds=0, max_duration_seconds=60)
    players = []
    for n in range(1, 11):
        player = make_user(f"player{n}")
        for _ in range(n):
            action = services.start_action(user=player, action_type_code=tens.code)
            services.complete_action(user=player, action_id=action.pk)
        players.append(player)
    return players


def _gift_type(points: int) -> str:
    code = f"gift-{points}"
    ActionType.objects.get_or_create(code=code, defaults={"name": code, "points": points, "max_duration_seconds": 60})
    return code


def _give(user, points: int) -> None:
    """Directly through the write path, for setup before the page opens or while the server is down."""
    action = services.start_action(user=user, action_type_code=_gift_type(points))
    services.complete_action(user=user, action_id=action.pk)


def _give_live(server, user, points: int) -> None:
    """Through the running server, which broadcasts the change (on the embedded default it is the only process)."""
    play_via_api(server, user.username, _gift_type(points))


def _names(page: Page) -> list[str]:
    return page.locator("#board-rows tr[data-user-id] .name").evaluate_all(
        "cells => cells.map(cell => cell.firstChild.textContent)"
    )


def _wait_live(page: Page, timeout: float = 10_000) -> None:
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=timeout)
    expect(page.locator("#live-status .status-text")).to_have_text("Live")


def test_viewer_sees_another_player_enter_the_top_ten_within_a_second(server, new_context, ten_players, make_user):
    make_user("viewer_a")
    make_user("player_b")
    ActionType.objects.create(code="boost", name="Boost", points=45, min_duration_seconds=0, max_duration_seconds=60)

    viewer = sign_in(new_context(), server, "viewer_a")
    _wait_live(viewer)
    assert _names(viewer) == [f"player{n}" for n in range(10, 0, -1)]

    player = sign_in(new_context(), server, "player_b", then="/play")
    player.locator('.action-card[data-code="boost"] button.start').click()
    expect(player.locator("#current")).to_be_visible()
    with player.expect_response(lambda response: response.request.method == "PUT") as completion:
        player.get_by_role("button", name="Complete").click()
    assert completion.value.status == 200
    completed_at = time.monotonic()

    # B (45) goes between player5 (50) and player4 (40), at rank 7; player1 (10) drops off.
    viewer.wait_for_function(
        """() => { const row = document.querySelectorAll('#board-rows tr[data-user-id]')[6];
                   return row && row.querySelector('.name').textContent === 'player_b'
                       && row.querySelector('.score').textContent === '45'; }""",
        timeout=1000,
    )
    seen_after = time.monotonic() - completed_at
    assert seen_after < 1.0
    assert _names(viewer) == ["player10", "player9", "player8", "player7", "player6", "player5",
                              "player_b", "player4", "player3", "player2"]
    expect(viewer.locator("#board-rows tr[data-user-id]").nth(6).locator(".rank-badge")).to_have_text("7")
    expect(player.locator("#outcome")).to_have_text("+45 points for Boost! Your score is now 45, rank #7.")

    viewer.wait_for_timeout(1300)  # let the row animation settle for the picture
    screenshot(viewer, "board.png")
    screenshot(player, "play.png")


def test_own_row_is_highlighted_and_own_rank_shows_below_when_outside(server, new_context, ten_players, make_user):
    me = make_user("watcher")
    _give(me, 5)
    page = sign_in(new_context(), server, "watcher")
    _wait_live(page)
    expect(page.locator("#my-rank")).to_have_text("You are #11 with 5 points.")

    _give_live(server, me, 2)  # still 11th: only a rank_update tells this page
    expect(page.locator("#my-rank")).to_have_text("You are #11 with 7 points.")

    _give_live(server, me, 100)  # 107: top of the board, the rank paragraph goes away

    own = page.locator("#board-rows tr.me")
    expect(own).to_have_attribute("data-rank", "1", timeout=3000)
    expect(own.locator(".name")).to_have_text("watcher (you)")
    expect(own).to_have_attribute("aria-current", "true")
    expect(page.locator("#my-rank")).to_be_hidden()


def test_server_restart_shows_reconnecting_then_live_with_the_current_board(server, new_context, ten_players, make_user):
    make_user("viewer_a")
    latecomer = make_user("latecomer")
    page = sign_in(new_context(), server, "viewer_a")
    _wait_live(page)
    before = page.locator("#last-update").get_attribute("datetime")

    server.stop()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "reconnecting", timeout=5000)
    expect(page.locator("#live-status .status-text")).to_contain_text("Reconnecting")
    _give(latecomer, 500)  # changes while the page cannot hear: the snapshot on reconnect must bring them
    server.start()

    _wait_live(page, timeout=20_000)
    assert _names(page)[:2] == ["latecomer", "player10"]
    expect(page.locator("#board-rows tr[data-user-id]")).to_have_count(10)
    assert page.locator("#last-update").get_attribute("datetime") != before


def test_signed_out_elsewhere_the_board_says_so_instead_of_retrying(server, new_context, ten_players, make_user):
    make_user("viewer_a")
    context = new_context()
    page = sign_in(context, server, "viewer_a")
    _wait_live(page)

    context.clear_cookies()  # the session is gone (signed out in another tab, or expired)
    server.stop()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "reconnecting", timeout=5000)
    server.start()

    # The reconnect is refused with 4401: the page stops and asks to sign in, rather than retrying for ever.
    expect(page.locator("#live-status")).to_have_attribute("data-state", "offline", timeout=20_000)
    expect(page.locator("#live-status .status-text")).to_contain_text("sign in again")
    time.sleep(2)  # past the first retry delays: it stays refused, not reconnecting
    expect(page.locator("#live-status")).to_have_attribute("data-state", "offline")


def test_browser_offline_shows_offline_then_live_again(server, new_context, ten_players, make_user):
    make_user("viewer_a")
    context = new_context()
    page = sign_in(context, server, "viewer_a")
    _wait_live(page)

    context.set_offline(True)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "offline")
    expect(page.locator("#live-status .status-text")).to_contain_text("Offline")
    context.set_offline(False)

    _wait_live(page, timeout=20_000)


def test_usernames_with_markup_are_shown_as_text(server, new_context, make_user):
    script_name = "<script>window.__pwned = 1</script>"
    image_name = "<img src=x onerror=window.__pwned=2>"
    _give(make_user(script_name), 30)
    make_user("viewer_a")
    page = sign_in(new_context(), server, "viewer_a")
    _wait_live(page)

    _give_live(server, make_user(image_name), 20)  # arrives over the WebSocket, rendered by board.js

    expect(page.locator("#board-rows tr[data-user-id]")).to_have_count(2)
    assert _names(page) == [script_name, image_name]
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#board-rows script, #board-rows img").count() == 0


def test_board_screenshots_light_dark_and_phone(server, new_context, make_user):
    for name, points in [("alice", 120), ("bob", 95), ("carol", 85), ("dave", 60), ("erin", 55), ("frank", 45),
                         ("grace", 35), ("heidi", 30), ("ivan", 20), ("judy", 15), ("mallory", 10)]:
        _give(make_user(name), points)
    page = sign_in(new_context(), server, "dave")
    _wait_live(page)
    expect(page.locator("#board-rows tr.me .name")).to_have_text("dave (you)")
    screenshot(page, "board-light.png")

    dark = sign_in(new_context(color_scheme="dark"), server, "mallory")
    _wait_live(dark)
    expect(dark.locator("#my-rank")).to_have_text("You are #11 with 10 points.")
    screenshot(dark, "board-dark.png")

    phone = sign_in(new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True), server, "dave")
    _wait_live(phone)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
    screenshot(phone, "board-phone.png")


def test_period_switcher_shows_todays_board_and_keeps_it_live(server, new_context, ten_players, make_user):
    make_user("viewer_a")
    newcomer = make_user("newcomer")
    page = sign_in(new_context(), server, "viewer_a")
    _wait_live(page)

    page.get_by_role("link", name="Today").click()
    page.wait_for_url(f"{server.url}/?period=daily")
    expect(page.get_by_role("link", name="Today")).to_have_attribute("aria-current", "page")
    _wait_live(page)
    assert _names(page) == [f"player{n}" for n in range(10, 0, -1)]  # everyone scored today

    _give_live(server, newcomer, 55)

    expect(page.locator("#board-rows tr[data-user-id]").nth(5).locator(".name")).to_have_text("newcomer", timeout=3000)


def test_weekly_board_follows_its_own_socket_and_updates_live(server, new_context, ten_players, make_user):
    """Last week's points count all-time only: a small score now tops this week's board without touching the
    all-time top 10, and the weekly page shows it at once through its own `?period=weekly` socket (no polling)."""
    make_user("viewer_a")
    newcomer = make_user("newcomer")
    ScoreEvent.objects.update(created_at=F("created_at") - timedelta(days=8))
    leaderboard.rebuild()  # the Redis period boards were built from the rows before they moved (no-op on SQLite)
    page = sign_in(new_context(), server, "viewer_a")
    socket_urls = []
    page.on("websocket", lambda socket: socket_urls.append(socket.url))
    page.get_by_role("link", name="This week").click()
    page.wait_for_url(f"{server.url}/?period=weekly")
    _wait_live(page)
    assert _names(page) == []
    assert socket_urls and socket_urls[-1].endswith("/ws/scoreboard?period=weekly")

    _give_live(server, newcomer, 5)

    expect(page.locator("#board-rows tr[data-user-id]").first.locator(".name")).to_have_text("newcomer", timeout=3000)
    expect(page.locator("#board-rows tr[data-user-id]").first.locator(".score")).to_have_text("5")
