"""Attacks on the bearer tokens: each forged token is refused with 401 in the one error shape, and pays nothing."""

import base64
import json
import time

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.security.conftest import assert_error

pytestmark = pytest.mark.django_db

SIGNING_KEY = settings.SIMPLE_JWT["SIGNING_KEY"]


def _claims(user, **extra) -> dict:
    now = int(time.time())
    return {"token_type": "access", "user_id": str(user.pk), "jti": "attack", "iat": now, "exp": now + 300, **extra}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _attempt_start(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json")


def _refused(token: str, ledger_unchanged) -> None:
    with ledger_unchanged():
        response = _attempt_start(token)
        assert_error(response, 401, "invalid_token")
    from scores.models import Action

    assert not Action.objects.exists()


def _refused_after_start(token: str, ledger_unchanged) -> None:
    from scores.models import Action

    started = Action.objects.count()
    with ledger_unchanged():
        assert_error(_attempt_start(token), 401, "invalid_token")
    assert Action.objects.count() == started


def test_token_signed_with_another_key(alice, quick_type, ledger_unchanged):
    _refused(jwt.encode(_claims(alice), "not-the-server-key-" * 4, algorithm="HS256"), ledger_unchanged)


@pytest.mark.filterwarnings("ignore:The HMAC key is")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_with_another_algorithm(alice, quick_type, ledger_unchanged, algorithm):
    # Even signed with the server's own key: only HS256 is accepted.
    _refused(jwt.encode(_claims(alice), SIGNING_KEY, algorithm=algorithm), ledger_unchanged)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_token(alice, quick_type, ledger_unchanged, alg):
    unsigned = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(_claims(alice))}."
    _refused(unsigned, ledger_unchanged)


UNREADABLE_CLAIMS = [
    {"exp": 10**20}, {"user_id": {"id": 1}}, {"user_id": [1]}, {"user_id": "not-a-uuid"}, {"user_id": 2**128},
]


@pytest.mark.parametrize("claims", UNREADABLE_CLAIMS, ids=lambda claims: json.dumps(claims))
def test_server_signed_token_with_an_unreadable_claim(alice, quick_type, ledger_unchanged, claims):
    """Only a holder of the signing key makes these, but they must still be a 401, never a 500."""
    bad = jwt.encode(_claims(alice, **claims), SIGNING_KEY, algorithm="HS256")
    _refused(bad, ledger_unchanged)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bad}")
    assert_error(client.get("/api/v1/users/me"), 401, "invalid_token")
    refresh = jwt.encode(_claims(alice, **claims, token_type="refresh"), SIGNING_KEY, algorithm="HS256")
    assert_error(APIClient().post("/api/v1/auth/refresh", {"refreshToken": refresh}, format="json"), 401)
    assert_error(client.get("/api/v1/leaderboard/stream"), 401, "invalid_token")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("claims", UNREADABLE_CLAIMS, ids=lambda claims: json.dumps(claims))
async def test_websocket_refuses_a_server_signed_token_with_an_unreadable_claim(alice, claims):
    from scoreboard_project.asgi import application

    bad = jwt.encode(_claims(alice, **claims), SIGNING_KEY, algorithm="HS256")
    socket = WebsocketCommunicator(application, f"/ws/scoreboard?token={bad}")
    connected, _ = await socket.connect(timeout=5)
    assert connected
    assert json.loads(await socket.receive_from(timeout=3))["error"]["code"] == "invalid_token"
    assert (await socket.receive_output(timeout=3))["code"] == 4401


def test_expired_token(alice, quick_type, ledger_unchanged):
    now = int(time.time())
    _refused(jwt.encode(_claims(alice, iat=now - 700, exp=now - 1), SIGNING_KEY, algorithm="HS256"), ledger_unchanged)


def test_token_accepted_before_is_refused_once_expired(alice, quick_type, ledger_unchanged):
    # The process remembers tokens it has verified; a remembered one must still expire on time.
    expires = int(time.time()) + 2
    token = jwt.encode(_claims(alice, exp=expires), SIGNING_KEY, algorithm="HS256")
    assert _attempt_start(token).status_code == 201
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    _refused_after_start(token, ledger_unchanged)


def test_tampered_payload_keeps_the_old_signature(alice, bob, quick_type, ledger_unchanged):
    header, _payload, signature = str(RefreshToken.for_user(alice).access_token).split(".")
    _refused(f"{header}.{_b64(_claims(bob))}.{signature}", ledger_unchanged)


def test_refresh_token_used_as_access_token(alice, quick_type, ledger_unchanged):
    _refused(str(RefreshToken.for_user(alice)), ledger_unchanged)


def test_public_key_confusion_rs256_header(alice, quick_type, ledger_unchanged):
    # An RS256 header over an HMAC made with the shared key (the classic algorithm-confusion trick).
    header = _b64({"alg": "RS256", "typ": "JWT"})
    body = _b64(_claims(alice))
    import hashlib
    import hmac

    mac = hmac.new(SIGNING_KEY.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    _refused(f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}", ledger_unchanged)


def test_access_tokens_are_short_lived():
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() == 600
    assert settings.SIMPLE_JWT["ROTATE_REFRESH_TOKENS"] and settings.SIMPLE_JWT["BLACKLIST_AFTER_ROTATION"]
    assert "rest_framework_simplejwt.token_blacklist" in settings.INSTALLED_APPS


def test_rotated_refresh_token_cannot_be_replayed(anon, alice):
    tokens = anon.post("/api/v1/auth/login", {"username": "alice", "password": "correct-horse-battery"},
                       format="json").json()
    assert anon.post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json").status_code == 200
    assert_error(anon.post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json"),
                 401, "invalid_token")
