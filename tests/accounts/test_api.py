import time

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

REGISTER, LOGIN, REFRESH, LOGOUT, ME = (
    "/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/users/me",
)


def _login(anon, username="alice", password="correct-horse-battery"):
    return anon.post(LOGIN, {"username": username, "password": password}, format="json")


def test_register_creates_user(anon, django_user_model):
    response = anon.post(REGISTER, {"username": "zoe", "password": "a-long-unusual-passphrase"}, format="json")
    assert response.status_code == 201
    user = django_user_model.objects.get(username="zoe")
    assert response.json() == {"userId": str(user.pk), "username": "zoe"}
    assert user.check_password("a-long-unusual-passphrase") and user.score == 0


def test_register_applies_password_validators(anon, django_user_model):
    response = anon.post(REGISTER, {"username": "zoe", "password": "12345678"}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "validation_error" and "password" in body["details"]
    assert not django_user_model.objects.filter(username="zoe").exists()


def test_register_taken_username_conflicts(anon, alice):
    response = anon.post(REGISTER, {"username": "Alice", "password": "a-long-unusual-passphrase"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"


@pytest.mark.parametrize(
    "body", [{}, {"username": "zoe"}, {"username": ["x"], "password": "a-long-unusual-passphrase"},
             {"username": "bad name!", "password": "a-long-unusual-passphrase"},
             {"username": "zoe", "password": "a-long-unusual-passphrase", "email": "nope"},
             # Valid in form, but longer than the column's 254: a 400, not a database error.
             {"username": "zoe", "password": "a-long-unusual-passphrase", "email": "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".com"},
             {"username": 12345678, "password": "a-long-unusual-passphrase"},  # not coerced to a string
             {"username": "zoe", "password": 918273645546372819}],
)
def test_register_rejects_bad_bodies(anon, body, django_user_model):
    response = anon.post(REGISTER, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not django_user_model.objects.exists()


def test_login_returns_token_pair(anon, alice):
    response = _login(anon)
    assert response.status_code == 200
    body = response.json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == settings.ACCESS_TOKEN_LIFETIME_SECONDS
    me = anon.get(ME, HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}")
    assert me.status_code == 200 and me.json()["username"] == "alice"


def test_login_bad_credentials_401(anon, alice):
    response = _login(anon, password="wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert _login(anon, username="nobody").status_code == 401


def test_refresh_rotates_and_old_token_dies(anon, alice):
    first = _login(anon).json()
    response = anon.post(REFRESH, {"refreshToken": first["refreshToken"]}, format="json")
    assert response.status_code == 200
    second = response.json()
    assert second["refreshToken"] != first["refreshToken"] and second["tokenType"] == "Bearer"
    again = anon.post(REFRESH, {"refreshToken": first["refreshToken"]}, format="json")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_token"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_refresh_token_sent_six_times_at_once_mints_one_new_pair(anon, alice):
    used = _login(anon).json()["refreshToken"]

    def refresh(_: int) -> tuple[int, dict]:
        response = APIClient().post(REFRESH, {"refreshToken": used}, format="json")
        return response.status_code, response.json()

    results = run_at_once(refresh, 6)
    assert sorted(status for status, _ in results) == [200, 401, 401, 401, 401, 401]
    assert {body["error"]["code"] for status, body in results if status == 401} == {"invalid_token"}
    (fresh,) = [body["refreshToken"] for status, body in results if status == 200]
    assert anon.post(REFRESH, {"refreshToken": fresh}, format="json").status_code == 200


def test_refresh_token_of_a_deleted_user_is_refused(anon, alice):
    tokens = _login(anon).json()
    alice.delete()
    response = anon.post(REFRESH, {"refreshToken": tokens["refreshToken"]}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_refresh_rejects_garbage(anon):
    assert anon.post(REFRESH, {"refreshToken": "garbage"}, format="json").status_code == 401
    assert anon.post(REFRESH, {}, format="json").status_code == 400


def test_logout_kills_refresh_token(anon, alice):
    tokens = _login(anon).json()
    response = anon.post(LOGOUT, {"refreshToken": tokens["refreshToken"]}, format="json")
    assert response.status_code == 204
    assert anon.post(REFRESH, {"refreshToken": tokens["refreshToken"]}, format="json").status_code == 401
    assert anon.post(LOGOUT, {"refreshToken": tokens["refreshToken"]}, format="json").status_code == 401


def test_me_reports_score_and_null_rank_before_scoring(as_alice, alice):
    response = as_alice.get(ME)
    assert response.status_code == 200
    assert response.json() == {
        "userId": str(alice.pk), "username": "alice", "score": 0, "rank": None,
        "ranks": {"all-time": None, "weekly": None, "daily": None},
    }


def test_me_requires_token(anon):
    response = anon.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_expired_or_forged_tokens_are_refused(anon, alice):
    now = int(time.time())
    claims = {"token_type": "access", "user_id": str(alice.pk), "jti": "x", "iat": now - 100}
    expired = jwt.encode({**claims, "exp": now - 10}, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    forged = jwt.encode({**claims, "exp": now + 100}, "a-different-signing-key-of-sufficient-length-0123456789", algorithm="HS256")
    for token in (expired, forged, "garbage"):
        response = anon.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401, token
        assert response.json()["error"]["code"] == "invalid_token"
