import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from scores import leaderboard, services
from scores.models import Action

pytestmark = pytest.mark.django_db

CREDENTIALS = {"username": "alice", "password": "correct-horse-battery"}


def _login(client: APIClient) -> dict:
    return client.post("/api/v1/auth/login", CREDENTIALS, format="json").json()


def _score(user) -> None:
    action = services.start_action(user=user, action_type_code="quick")
    services.complete_action(user=user, action_id=action.pk)


def test_banned_users_access_token_stops_working_at_once(anon, alice, quick_type):
    tokens = _login(anon)
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert anon.get("/api/v1/users/me").status_code == 200

    account_services.ban_user(user_id=alice.pk)

    for response in (
        anon.get("/api/v1/users/me"),
        anon.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json"),
        anon.get("/api/v1/leaderboard"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "banned"
    assert not Action.objects.exists()


def test_banned_users_refresh_token_is_blacklisted(anon, alice):
    tokens = _login(anon)
    account_services.ban_user(user_id=alice.pk)
    response = anon.post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_banned_user_cannot_log_in_but_a_wrong_password_does_not_reveal_the_ban(anon, alice):
    account_services.ban_user(user_id=alice.pk)
    response = anon.post("/api/v1/auth/login", CREDENTIALS, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "banned"
    wrong = anon.post("/api/v1/auth/login", {**CREDENTIALS, "password": "guess"}, format="json")
    assert wrong.status_code == 401


def test_banned_user_leaves_the_boards_until_unbanned(anon, alice, bob, quick_type):
    _score(alice)
    _score(alice)
    _score(bob)
    account_services.ban_user(user_id=alice.pk)

    board = anon.get("/api/v1/leaderboard").json()["data"]
    assert [(row["username"], row["rank"]) for row in board] == [("bob", 1)]
    assert leaderboard.rank_of(alice) is None

    account_services.unban_user(user_id=alice.pk)
    board = anon.get("/api/v1/leaderboard").json()["data"]
    assert [row["username"] for row in board] == ["alice", "bob"]
    assert _login(anon)["accessToken"]


def test_session_of_a_banned_user_is_refused_too(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/users/me").status_code == 200
    account_services.ban_user(user_id=alice.pk)
    assert client.get("/api/v1/users/me").status_code == 403


def test_staff_ban_and_unban_from_the_admin(client, admin_user, alice):
    client.force_login(admin_user)
    client.post("/admin/accounts/user/", {"action": "ban_selected", "_selected_action": [str(alice.pk)]})
    alice.refresh_from_db()
    assert alice.is_banned and alice.banned_at is not None
    response = client.get("/admin/accounts/user/", {"is_banned__exact": "1"})
    assert b"alice" in response.content

    client.post("/admin/accounts/user/", {"action": "unban_selected", "_selected_action": [str(alice.pk)]})
    alice.refresh_from_db()
    assert not alice.is_banned


def test_staff_cannot_ban_themselves(client, admin_user):
    client.force_login(admin_user)
    client.post("/admin/accounts/user/", {"action": "ban_selected", "_selected_action": [str(admin_user.pk)]})
    admin_user.refresh_from_db()
    assert not admin_user.is_banned
