"""The play panel in a real browser: registering, the catalogue, the timer, and each refusal in plain words."""

import pytest
from playwright.sync_api import expect

from scores import services
from scores.models import ActionType
from tests.browser.conftest import screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def catalogue(db) -> None:
    ActionType.objects.create(code="tap", name="Quick tap", points=5, min_duration_seconds=0, max_duration_seconds=60)
    ActionType.objects.create(code="quiz", name="Quiz round", points=20, min_duration_seconds=30, max_duration_seconds=300)
    ActionType.objects.create(code="blink", name="Blink", points=7, min_duration_seconds=0, max_duration_seconds=1)


def test_register_then_play_and_see_points_score_and_rank(server, new_context, catalogue):
    page = new_context().new_page()
    page.goto(f"{server.url}/register")
    page.get_by_label("Username").fill("newplayer")
    page.get_by_label("Password", exact=True).fill("a-long-unusual-phrase")
    page.get_by_label("Password confirmation").fill("a-long-unusual-phrase")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server.url}/play")

    expect(page.locator(".action-card")).to_have_count(3)
    expect(page.locator('.action-card[data-code="quiz"] .points-chip')).to_have_text("20 pts")
    page.get_by_role("button", name="Start Quick tap").click()
    expect(page.locator("#current-name")).to_have_text("Quick tap")
    expect(page.locator("#timer")).to_have_text("0:00")
    page.get_by_role("button", name="Complete").click()

    expect(page.locator("#outcome")).to_have_text("+5 points for Quick tap! Your score is now 5, rank #1.")
    expect(page.locator("#my-score")).to_have_text("5")
    expect(page.locator("#my-rank")).to_have_text("#1")
    expect(page.locator("#current")).to_be_hidden()


def test_register_form_errors_are_friendly(server, new_context, make_user):
    make_user("taken")
    page = new_context().new_page()
    page.goto(f"{server.url}/register")
    page.get_by_label("Username").fill("Taken")
    page.get_by_label("Password", exact=True).fill("a-long-unusual-phrase")
    page.get_by_label("Password confirmation").fill("something-else-entirely")
    page.get_by_role("button", name="Create account").click()

    expect(page.locator("#username-errors")).to_have_text("A user with that username already exists.")
    expect(page.locator("#password2-errors")).to_have_text("The two passwords are different.")
    expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")


def test_refusals_are_shown_in_plain_words(server, new_context, make_user, catalogue):
    make_user("player")
    page = sign_in(new_context(), server, "player", then="/play")

    page.get_by_role("button", name="Start Quiz round").click()
    expect(page.locator("#timer-hint")).to_contain_text("Ready to complete in")
    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#outcome")).to_contain_text("Too fast: this action can only be completed after its minimum time.")
    expect(page.locator("#outcome")).to_have_class("outcome refusal")
    expect(page.locator("#current")).to_be_visible()  # still started: it can be completed later
    screenshot(page, "play-refusal.png")

    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#outcome")).to_have_text("Cancelled Quiz round: no points.")

    page.get_by_role("button", name="Start Blink").click()
    expect(page.locator("#timer-hint")).to_have_text("Time is up: this action has expired.", timeout=3000)
    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#outcome")).to_have_text("Too late: this action expired before it was completed. Start a new one.")
    expect(page.locator("#current")).to_be_hidden()
    expect(page.locator("#my-score")).to_have_text("0")


def test_rate_limited_refusal_says_when_to_retry(server, new_context, make_user, catalogue):
    make_user("player")
    page = sign_in(new_context(), server, "player", then="/play")
    # The network edge answers as a rate limiter does (429, Retry-After, the API's error shape).
    page.route("**/api/v1/users/me/actions", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "7", "Content-Type": "application/json"},
        body='{"error": {"code": "rate_limited", "message": "Too many requests.", "details": {"retryAfterSeconds": 7}}}',
    ))

    page.get_by_role("button", name="Start Quick tap").click()

    expect(page.locator("#outcome")).to_have_text("Slow down: too many requests. Try again in 7 seconds.")
    expect(page.locator("#current")).to_be_hidden()


def test_play_panel_screenshot_dark(server, new_context, make_user, catalogue):
    make_user("player")
    page = sign_in(new_context(color_scheme="dark"), server, "player", then="/play")
    page.get_by_role("button", name="Start Quiz round").click()
    expect(page.locator("#current")).to_be_visible()
    page.wait_for_timeout(1100)
    screenshot(page, "play-dark.png")


def test_too_many_open_actions_is_explained(server, new_context, make_user, catalogue, settings):
    player = make_user("player")
    for _ in range(settings.MAX_OPEN_ACTIONS_PER_USER):
        services.start_action(user=player, action_type_code="quiz")
    page = sign_in(new_context(), server, "player", then="/play")

    page.get_by_role("button", name="Start Quick tap").click()

    expect(page.locator("#outcome")).to_have_text(
        "You already have the most actions in progress at once. Complete or cancel one first "
        "(unfinished ones expire on their own)."
    )
