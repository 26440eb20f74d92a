"""Attacks by a logged-in player on the action lifecycle and the request bodies."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from scores import services
from scores.models import Action, ScoreEvent
from tests.concurrency import run_at_once
from tests.security.conftest import assert_error

pytestmark = pytest.mark.django_db

ACTIONS = "/api/v1/users/me/actions"


def _start(client, code: str = "quick", **extra) -> str:
    response = client.post(ACTIONS, {"actionType": code, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["actionId"]


def _complete(client, action_id: str, **extra):
    return client.put(f"{ACTIONS}/{action_id}", {"status": "completed", **extra}, format="json")


def test_acting_on_another_users_path(as_alice, bob, quick_type, ledger_unchanged):
    with ledger_unchanged():
        assert_error(as_alice.post(f"/api/v1/users/{bob.pk}/actions", {"actionType": "quick"}, format="json"), 403)
        assert_error(as_alice.get(f"/api/v1/users/{bob.pk}/actions"), 403)
    assert not Action.objects.exists()


def test_completing_another_users_action(as_alice, as_bob, bob, quick_type, ledger_unchanged):
    bobs_action = _start(as_bob)
    with ledger_unchanged():
        assert_error(_complete(as_alice, bobs_action), 403)
        assert_error(as_alice.put(f"/api/v1/users/{bob.pk}/actions/{bobs_action}", {"status": "completed"},
                                  format="json"), 403)
        assert_error(as_alice.put(f"{ACTIONS}/{bobs_action}", {"status": "cancelled"}, format="json"), 403)
    assert Action.objects.get(pk=bobs_action).status == "started"


def test_completing_twice(as_alice, alice, quick_type, ledger_unchanged):
    action_id = _start(as_alice)
    assert _complete(as_alice, action_id).status_code == 200
    with ledger_unchanged():
        assert_error(_complete(as_alice, action_id), 409, "action_not_started")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_completing_from_20_threads_at_once(alice, quick_type):
    action_id = str(services.start_action(user=alice, action_type_code="quick").pk)
    token = str(RefreshToken.for_user(alice).access_token)

    def attack(_: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return _complete(client, action_id).status_code

    statuses = run_at_once(attack, 20)
    assert sorted(statuses) == [200] + [409] * 19
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.filter(user=alice).count() == 1


def test_completing_too_fast(as_alice, slow_type, ledger_unchanged):
    action_id = _start(as_alice, "slow")
    with ledger_unchanged():
        assert_error(_complete(as_alice, action_id), 422, "action_too_fast")
    assert Action.objects.get(pk=action_id).status == "started"


def test_completing_after_the_maximum_duration(as_alice, slow_type, ledger_unchanged):
    action_id = _start(as_alice, "slow")
    Action.objects.filter(pk=action_id).update(started_at=timezone.now() - timedelta(hours=1))
    with ledger_unchanged():
        assert_error(_complete(as_alice, action_id), 409, "action_not_started")


@pytest.mark.parametrize("field", ["points", "score", "total", "pointsAwarded", "delta", "multiplier"])
def test_sending_points_in_any_body_is_never_applied(as_alice, alice, quick_type, field):
    action_id = _start(as_alice, **{field: 10**6})
    response = _complete(as_alice, action_id, **{field: 10**6})
    assert response.status_code == 200
    assert response.json()["pointsAwarded"] == 10
    alice.refresh_from_db()
    assert alice.score == 10
    assert list(ScoreEvent.objects.values_list("delta", flat=True)) == [10]


def test_mass_assignment_on_register(anon, django_user_model, ledger_unchanged):
    body = {
        "username": "mallory", "password": "a-long-unusual-passphrase",
        "is_staff": True, "is_superuser": True, "is_banned": False, "score": 10**6, "id": "00000000-0000-0000-0000-000000000001",
        "score_updated_at": "2020-01-01T00:00:00Z", "groups": [1], "user_permissions": [1],
    }
    with ledger_unchanged():
        assert anon.post("/api/v1/auth/register", body, format="json").status_code == 201
    mallory = django_user_model.objects.get(username="mallory")
    assert (mallory.is_staff, mallory.is_superuser, mallory.score, mallory.score_updated_at) == (False, False, 0, None)
    assert str(mallory.pk) != body["id"]
    assert not mallory.user_permissions.exists() and not mallory.groups.exists()


def test_oversized_metadata(as_alice, quick_type, ledger_unchanged):
    with ledger_unchanged():
        assert_error(as_alice.post(ACTIONS, {"actionType": "quick", "metadata": {"blob": "x" * 5000}}, format="json"),
                     400, "validation_error")
        huge = b'{"actionType":"quick","metadata":{"blob":"' + b"x" * 1_000_000 + b'"}}'
        assert_error(as_alice.generic("POST", ACTIONS, huge, content_type="application/json"), 413, "payload_too_large")
    assert not Action.objects.exists()


@pytest.mark.parametrize("depth", [6, 50, 5000])
def test_deeply_nested_metadata(as_alice, quick_type, ledger_unchanged, depth):
    body = '{"actionType":"quick","metadata":' + '{"a":' * depth + "1" + "}" * depth + "}"
    with ledger_unchanged():
        response = as_alice.generic("POST", ACTIONS, body, content_type="application/json")
        assert_error(response, 400)
    assert not Action.objects.exists()


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"actionType": "quick",}', b"\xff\xfe", b"NaN", b'{"actionType": NaN}', b"[]", b"null", b'"quick"', b""],
)
def test_malformed_json(as_alice, quick_type, ledger_unchanged, body):
    with ledger_unchanged():
        assert_error(as_alice.generic("POST", ACTIONS, body, content_type="application/json"), 400)
    assert not Action.objects.exists()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"]
)
def test_wrong_content_type(as_alice, quick_type, ledger_unchanged, content_type):
    with ledger_unchanged():
        response = as_alice.generic("POST", ACTIONS, "actionType=quick", content_type=content_type)
        assert_error(response, 415, "unsupported_media_type")
    assert not Action.objects.exists()


@pytest.mark.parametrize(
    "username",
    ["alice' OR '1'='1", "x'; DROP TABLE accounts_user; --", "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>",
     "admin\x00", "a" * 151],
)
def test_sql_and_script_strings_as_usernames(anon, alice, django_user_model, username):
    response = anon.post("/api/v1/auth/register", {"username": username, "password": "a-long-unusual-passphrase"},
                         format="json")
    assert_error(response, 400, "validation_error")
    login = anon.post("/api/v1/auth/login", {"username": username, "password": "correct-horse-battery"}, format="json")
    assert login.status_code in (400, 401)
    assert django_user_model.objects.count() == 1


def test_script_username_is_escaped_on_the_board_page(client, make_user, quick_type):
    # Usernames cannot carry markup through the API; one made by other means must still be inert on the page.
    villain = make_user("<script>alert(1)</script>")
    action = services.start_action(user=villain, action_type_code="quick")
    services.complete_action(user=villain, action_id=action.pk)
    page = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_spoofed_x_forwarded_for_does_not_dodge_the_login_limit(settings, anon, alice):
    settings.RATE_LIMIT_LOGIN = "3/h"
    settings.TRUSTED_PROXY_COUNT = 0
    credentials = {"username": "alice", "password": "wrong"}
    statuses = [
        anon.post("/api/v1/auth/login", credentials, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_spoofed_x_forwarded_for_behind_a_trusted_proxy(settings, anon, alice):
    # Behind one proxy the client can only prepend entries; the proxy-appended address is what counts.
    settings.RATE_LIMIT_LOGIN = "2/h"
    settings.TRUSTED_PROXY_COUNT = 1
    credentials = {"username": "alice", "password": "wrong"}
    statuses = [
        anon.post("/api/v1/auth/login", credentials, format="json",
                  HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.9").status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_flooding_starts_hits_the_rate_limit(settings, as_alice, quick_type):
    settings.RATE_LIMIT_START_ACTION = "3/h"
    settings.MAX_OPEN_ACTIONS_PER_USER = 10
    statuses = [as_alice.post(ACTIONS, {"actionType": "quick"}, format="json").status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert Action.objects.count() == 3


def test_hoarding_open_actions(as_alice, quick_type):
    for _ in range(3):
        _start(as_alice)
    assert_error(as_alice.post(ACTIONS, {"actionType": "quick"}, format="json"), 409, "too_many_open_actions")


def test_banned_user(as_alice, alice, quick_type, ledger_unchanged):
    from accounts.services import ban_user

    action_id = _start(as_alice)
    ban_user(user_id=alice.pk)
    with ledger_unchanged():
        assert_error(_complete(as_alice, action_id), 403, "banned")
        assert_error(as_alice.post(ACTIONS, {"actionType": "quick"}, format="json"), 403, "banned")
    assert Action.objects.get(pk=action_id).status == "started"
