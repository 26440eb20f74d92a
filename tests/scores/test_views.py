"""The HTML pages as a browser without JavaScript sees them: the board, the play panel, static files."""

import re

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from scores import services
from scores.models import ActionType

pytestmark = pytest.mark.django_db


def _play(user, code: str = "quick", times: int = 1) -> None:
    for _ in range(times):
        action = services.start_action(user=user, action_type_code=code)
        services.complete_action(user=user, action_id=action.pk)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-user-id="[^"]+"[^>]*>.*?</tr>', html, flags=re.S)


def test_board_renders_top_ten_in_order_without_javascript(make_user, quick_type):
    players = [make_user(f"player{n:02d}") for n in range(12)]
    for times, player in enumerate(players, start=1):
        _play(player, times=times)

    html = Client().get("/").content.decode()

    rows = _rows(html)
    assert len(rows) == 10
    assert "player11" in rows[0] and ">120<" in rows[0]
    assert "player02" in rows[9] and ">30<" in rows[9]
    assert "player01" not in html and "player00" not in html
    assert 'aria-live="polite"' in html
    assert '<th scope="col">Rank</th>' in html


def test_board_highlights_signed_in_users_row(alice, bob, quick_type):
    _play(alice, times=2)
    _play(bob)

    html = _signed_in(bob).get("/").content.decode()

    own = [row for row in _rows(html) if f'data-user-id="{bob.pk}"' in row]
    assert len(own) == 1 and 'class="me"' in own[0] and 'aria-current="true"' in own[0]
    assert 'id="my-rank" hidden' in html


def test_board_shows_own_rank_below_when_outside_top_ten(make_user, alice, quick_type):
    for n in range(10):
        _play(make_user(f"ahead{n}"), times=3)
    _play(alice)

    html = _signed_in(alice).get("/").content.decode()

    assert f'data-user-id="{alice.pk}"' not in html
    mine = re.search(r'<p class="my-rank" id="my-rank"(.*?)</p>', html, flags=re.S).group(1)
    assert "hidden" not in mine.split(">")[0]
    assert '<span class="my-rank-value">11</span>' in mine and '<span class="my-score-value">10</span>' in mine


def test_board_escapes_usernames(make_user, quick_type):
    _play(make_user('<script>alert("x")</script>'))

    html = Client().get("/").content.decode()

    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert '<script>alert("x")' not in html


def test_board_live_needs_sign_in_unless_public_boards_allowed(alice):
    assert 'data-live="off"' in Client().get("/").content.decode()
    assert 'data-live="on"' in _signed_in(alice).get("/").content.decode()
    with override_settings(LIVE_ALLOW_ANONYMOUS=True):
        assert 'data-live="on"' in Client().get("/").content.decode()


def test_play_requires_sign_in():
    response = Client().get("/play")
    assert response.status_code == 302
    assert response["Location"] == "/login?next=/play"


def test_play_lists_active_action_types_with_points(alice, quick_type, slow_type):
    ActionType.objects.create(code="retired", name="Retired thing", points=999, is_active=False)
    _play(alice)

    response = _signed_in(alice).get("/play")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-code="quick"' in html and "10 pts" in html
    assert 'data-code="slow"' in html and "50 pts" in html and "Takes at least 1 min" in html
    assert "Retired thing" not in html
    assert '<strong id="my-score">10</strong>' in html and "#1" in html
    assert 'name="csrf-token"' in html and "csrftoken" in response.cookies


def test_play_panel_api_calls_need_the_csrf_header(alice, quick_type):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    token = client.get("/play").cookies["csrftoken"].value

    refused = client.post("/api/v1/users/me/actions", {"actionType": "quick"}, content_type="application/json")
    started = client.post("/api/v1/users/me/actions", {"actionType": "quick"}, content_type="application/json",
                          headers={"X-CSRFToken": token})
    completed = client.put(f"/api/v1/users/me/actions/{started.json()['actionId']}", {"status": "completed"},
                           content_type="application/json", headers={"X-CSRFToken": token})

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden" and "CSRF" in refused.json()["error"]["message"]
    assert started.status_code == 201
    assert completed.status_code == 200
    assert completed.json() | {"actionId": None, "completedAt": None} == {
        "actionId": None, "status": "completed", "pointsAwarded": 10, "score": 10, "rank": 1, "completedAt": None,
    }


def test_static_files_are_served_by_whitenoise_when_debug_is_off(tmp_path):
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(DEBUG=False, STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
        client = Client()
        page = client.get("/").content.decode()
        script = re.search(r'src="(/static/scores/board\.[0-9a-f]+\.js)"', page).group(1)
        response = client.get(script)

        assert response.status_code == 200
        assert "max-age=315360000" in response["Cache-Control"]
        assert b"LiveSocket" in b"".join(response.streaming_content)


def test_board_invites_a_player_who_has_not_scored(alice, bob, quick_type):
    _play(bob)
    html = _signed_in(alice).get("/").content.decode()
    assert "You are not on the board yet." in html and 'id="my-rank" hidden' not in html


def test_period_switcher_shows_the_chosen_period(alice, quick_type):
    _play(alice)
    html = Client().get("/?period=weekly").content.decode()
    assert 'aria-label="Period"' in html
    assert '<a href="?period=weekly" aria-current="page">This week</a>' in html
    assert 'data-period="weekly"' in html and "alice" in html


def test_unknown_period_falls_back_to_all_time(alice, quick_type):
    _play(alice)
    response = Client().get("/?period=fortnightly")
    assert response.status_code == 200
    assert 'data-period="all-time"' in response.content.decode()


# From the foundation tests (main).
def test_board_page_renders_top_ten_without_javascript(client, make_user, quick_type):
    player = make_user("<script>alert(1)</script>")
    action = services.start_action(user=player, action_type_code="quick")
    services.complete_action(user=player, action_id=action.pk)
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert 'aria-live="polite"' in page


def test_board_page_when_nobody_scored(client):
    assert "Nobody has scored yet." in client.get("/").content.decode()
