"""Sign-in, registration and sign-out pages: CSRF-protected forms with friendly errors."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db
User = get_user_model()


def _csrf_client(path: str) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    token = client.get(path).cookies["csrftoken"].value
    return client, token


def test_login_page_signs_in_and_returns_to_next(alice):
    client, token = _csrf_client("/login")

    response = client.post("/login", {"username": "alice", "password": "correct-horse-battery", "next": "/play",
                                      "csrfmiddlewaretoken": token})

    assert response.status_code == 302 and response["Location"] == "/play"
    assert client.get("/play").status_code == 200


def test_login_without_csrf_token_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login", {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_login_with_wrong_password_explains_in_plain_words(alice):
    client, token = _csrf_client("/login")

    response = client.post("/login", {"username": "alice", "password": "wrong", "csrfmiddlewaretoken": token})

    html = response.content.decode()
    assert response.status_code == 200
    assert "That username and password do not match an account." in html
    assert 'role="alert"' in html
    assert "_auth_user_id" not in client.session


def test_login_refuses_offsite_next(alice):
    client, token = _csrf_client("/login")
    response = client.post("/login", {"username": "alice", "password": "correct-horse-battery",
                                      "next": "https://evil.example/", "csrfmiddlewaretoken": token})
    assert response["Location"] == "/"


def test_register_creates_account_signs_in_and_opens_play():
    client, token = _csrf_client("/register")

    response = client.post("/register", {"username": "newbie", "password1": "a-long-unusual-phrase",
                                         "password2": "a-long-unusual-phrase", "csrfmiddlewaretoken": token})

    assert response.status_code == 302 and response["Location"] == "/play"
    user = User.objects.get(username="newbie")
    assert user.check_password("a-long-unusual-phrase") and user.score == 0
    assert client.get("/play").status_code == 200


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"username": "Alice", "password1": "a-long-unusual-phrase", "password2": "a-long-unusual-phrase"},
         "A user with that username already exists."),
        ({"username": "carol", "password1": "a-long-unusual-phrase", "password2": "another-long-phrase"},
         "The two passwords are different."),
        ({"username": "carol", "password1": "password", "password2": "password"}, "This password is too common."),
        ({"username": "bad name!", "password1": "a-long-unusual-phrase", "password2": "a-long-unusual-phrase"},
         "Enter a valid username."),
    ],
)
def test_register_explains_each_problem_and_creates_nothing(alice, form, message):
    client, token = _csrf_client("/register")

    response = client.post("/register", form | {"csrfmiddlewaretoken": token})

    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert 'aria-invalid="true"' in html
    assert User.objects.count() == 1


def test_logout_get_asks_and_post_signs_out(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    token = client.get("/play").cookies["csrftoken"].value

    confirm = client.get("/logout")
    response = client.post("/logout", {"csrfmiddlewaretoken": token})

    assert confirm.status_code == 200 and "Sign out?" in confirm.content.decode()
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/play").status_code == 302


@override_settings(RATE_LIMIT_LOGIN="2/h")
def test_login_page_shares_the_per_ip_sign_in_limit(alice):
    client = Client(REMOTE_ADDR="10.44.0.1")
    for _ in range(2):
        assert client.post("/login", {"username": "alice", "password": "wrong"}).status_code == 200

    limited = client.post("/login", {"username": "alice", "password": "correct-horse-battery"})

    assert limited.status_code == 429
    assert "Too many attempts from your network. Wait" in limited.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(RATE_LIMIT_REGISTER="1/h")
def test_register_page_shares_the_per_ip_registration_limit():
    client = Client(REMOTE_ADDR="10.44.0.2")
    form = {"username": "first", "password1": "a-long-unusual-phrase", "password2": "a-long-unusual-phrase"}
    assert client.post("/register", form).status_code == 302
    client.logout()

    limited = client.post("/register", form | {"username": "second"})

    assert limited.status_code == 429
    assert "Too many attempts from your network." in limited.content.decode()
    assert not User.objects.filter(username="second").exists()


def test_banned_user_cannot_sign_in_on_the_page(alice):
    User.objects.filter(pk=alice.pk).update(is_banned=True)
    client = Client()

    response = client.post("/login", {"username": "alice", "password": "correct-horse-battery"})

    assert response.status_code == 200
    assert "This account has been banned from Scoreboard." in response.content.decode()
    assert "_auth_user_id" not in client.session
