import uuid

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


def _refused(response, status: int = 403, code: str = "banned") -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


def test_a_banned_token_is_refused_on_every_path_of_the_action_endpoints(as_alice, alice, as_bob, quick_type):
    # Start and complete read the caller's row in their own transaction instead of at authentication: each way
    # out of those views, not only the successful one, must still answer 403 to a banned caller.
    own = as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json").json()["actionId"]
    bobs = as_bob.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json").json()["actionId"]
    account_services.ban_user(user_id=alice.pk)

    actions = "/api/v1/users/me/actions"
    for response in (
        as_alice.put(f"{actions}/{own}", {"status": "completed"}, format="json"),
        as_alice.put(f"{actions}/{own}", {"status": "cancelled"}, format="json"),
        as_alice.put(f"{actions}/{bobs}", {"status": "completed"}, format="json"),  # not theirs
        as_alice.put(f"{actions}/{uuid.uuid4()}", {"status": "completed"}, format="json"),  # no such action
        as_alice.put(f"{actions}/{own}", {"status": "paid"}, format="json"),  # invalid body
        as_alice.post(actions, {"actionType": "no-such-type"}, format="json"),
        as_alice.post(actions, {"actionType": "quick"}, format="json"),
        as_alice.get(actions),
    ):
        _refused(response)
    assert Action.objects.get(pk=own).status == "started"
    assert Action.objects.filter(user=alice).count() == 1


def test_a_deactivated_or_deleted_users_token_is_refused_by_the_action_endpoints(
    as_alice, alice, make_user, client_for, quick_type
):
    own = as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json").json()["actionId"]
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    _refused(as_alice.put(f"/api/v1/users/me/actions/{own}", {"status": "completed"}, format="json"), 401,
             "authentication_failed")
    _refused(as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json"), 401,
             "authentication_failed")
    assert Action.objects.get(pk=own).status == "started"

    carol = make_user("carol")
    as_carol = client_for(carol)
    carol.delete()
    _refused(as_carol.put(f"/api/v1/users/me/actions/{own}", {"status": "completed"}, format="json"), 401,
             "authentication_failed")
    _refused(as_carol.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json"), 401,
             "authentication_failed")
    assert not Action.objects.exclude(pk=own).exists()
