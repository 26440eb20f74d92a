"""Attacks on the trusted game server endpoint: replays, tampering, stolen or weak credentials."""

import json
import time

import pytest
from rest_framework.test import APIClient

from integrations.authentication import sign
from integrations.models import ApiClient
from tests.security.conftest import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/scores"


def _send(raw_key: str, raw: bytes, *, key: str = "k1", **headers):
    return APIClient().generic("POST", URL, raw, content_type="application/json", HTTP_X_API_KEY=raw_key,
                               HTTP_IDEMPOTENCY_KEY=key, **headers)


def _signed(secret: str, raw: bytes, at: float | None = None) -> dict:
    timestamp = str(int(at if at is not None else time.time()))
    return {"HTTP_X_TIMESTAMP": timestamp, "HTTP_X_SIGNATURE": sign(secret=secret, timestamp=timestamp, body=raw)}


def _body(user, **extra) -> bytes:
    return json.dumps({"userId": str(user.pk), "actionType": "quick", **extra}).encode()


def test_replayed_request_pays_once(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    assert _send(raw_key, _body(alice)).status_code == 200
    for _ in range(3):
        replay = _send(raw_key, _body(alice))
        assert replay["Idempotent-Replayed"] == "true"
    alice.refresh_from_db()
    assert alice.score == 10


def test_reusing_a_key_for_another_award(make_api_client, alice, bob, quick_type, ledger_unchanged):
    _, raw_key, _ = make_api_client()
    _send(raw_key, _body(alice))
    with ledger_unchanged():
        assert_error(_send(raw_key, _body(bob)), 422, "idempotency_key_reused")


def test_points_in_the_body_are_ignored(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    response = _send(raw_key, _body(alice, points=10**6, pointsAwarded=10**6, score=10**6))
    assert response.json()["pointsAwarded"] == 10


def test_guessed_or_deactivated_key(make_api_client, alice, quick_type, ledger_unchanged):
    client, raw_key, _ = make_api_client()
    with ledger_unchanged():
        assert_error(_send(raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B"), _body(alice)), 401)
        assert_error(_send(client.key_hash, _body(alice)), 401)  # the stored hash is not a key
        ApiClient.objects.update(is_active=False)
        assert_error(_send(raw_key, _body(alice)), 401)


def test_tampered_signed_request(make_api_client, alice, bob, quick_type, ledger_unchanged):
    _, raw_key, secret = make_api_client(signed=True)
    headers = _signed(secret, _body(alice))
    with ledger_unchanged():
        assert_error(_send(raw_key, _body(bob), **headers), 401, "authentication_failed")
        assert_error(_send(raw_key, _body(alice, actionType="slow"), **headers), 401)


def test_replayed_signed_request_after_the_window(make_api_client, alice, quick_type, ledger_unchanged):
    _, raw_key, secret = make_api_client(signed=True)
    stale = _signed(secret, _body(alice), at=time.time() - 301)
    with ledger_unchanged():
        assert_error(_send(raw_key, _body(alice), **stale), 401)


def test_replayed_signed_request_under_a_new_idempotency_key(make_api_client, alice, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    headers = _signed(secret, _body(alice))
    assert _send(raw_key, _body(alice), key="first", **headers).status_code == 200
    assert_error(_send(raw_key, _body(alice), key="second", **headers), 401, "signature_reused")
    alice.refresh_from_db()
    assert alice.score == 10


def test_signature_dropped_for_a_signing_client(make_api_client, alice, quick_type, ledger_unchanged):
    _, raw_key, _ = make_api_client(signed=True)
    with ledger_unchanged():
        assert_error(_send(raw_key, _body(alice)), 401)
        assert_error(_send(raw_key, _body(alice), HTTP_X_TIMESTAMP=str(int(time.time())), HTTP_X_SIGNATURE="sha256="), 401)


def test_player_token_on_the_server_endpoint(as_alice, alice, quick_type, ledger_unchanged):
    with ledger_unchanged():
        response = as_alice.generic("POST", URL, _body(alice), content_type="application/json", HTTP_IDEMPOTENCY_KEY="x")
        assert_error(response, 401)


def test_award_to_a_banned_user(make_api_client, alice, quick_type, ledger_unchanged):
    from accounts.services import ban_user

    _, raw_key, _ = make_api_client()
    ban_user(user_id=alice.pk)
    with ledger_unchanged():
        assert_error(_send(raw_key, _body(alice)), 403, "banned")
