import json
import time

import pytest

from tests.integrations.award import nothing_awarded, post, signed_headers, signed_post

pytestmark = pytest.mark.django_db


def test_signed_client_with_a_good_signature_is_served(make_api_client, alice, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    assert signed_post(raw_key, secret, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 200


def test_signed_client_without_a_signature_is_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(signed=True)
    response = post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    nothing_awarded(alice)


def test_tampered_body_is_401(make_api_client, alice, bob, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    tampered = json.dumps({"userId": str(bob.pk), "actionType": "quick"}).encode()
    assert signed_post(raw_key, secret, {"userId": str(alice.pk), "actionType": "quick"}, tamper=tampered).status_code == 401
    nothing_awarded(bob)


# A few seconds past the 300 s allowance: the header carries whole seconds and a loaded CI box may take a while
# between signing and checking, so 301 could land inside the window.
@pytest.mark.parametrize("offset", [-305, 305, -3600])
def test_stale_or_future_timestamp_is_401(make_api_client, alice, quick_type, offset):
    _, raw_key, secret = make_api_client(signed=True)
    response = signed_post(raw_key, secret, {"userId": str(alice.pk), "actionType": "quick"}, at=time.time() + offset)
    assert response.status_code == 401
    nothing_awarded(alice)


def test_signature_with_the_wrong_secret_is_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(signed=True)
    assert signed_post(raw_key, "0" * 64, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 401
    nothing_awarded(alice)


def test_captured_signed_request_cannot_be_replayed_under_a_new_key(make_api_client, alice, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    raw = json.dumps({"userId": str(alice.pk), "actionType": "quick"}).encode()
    headers = signed_headers(secret, raw)
    assert post(raw_key, raw, key="original", extra=headers).status_code == 200
    replay = post(raw_key, raw, key="original", extra=headers)
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (200, "true")

    attack = post(raw_key, raw, key="fresh-key", extra=headers)
    assert attack.status_code == 401
    assert attack.json()["error"]["code"] == "signature_reused"
    assert attack["WWW-Authenticate"] == "X-API-Key"  # every 401 says how to authenticate
    alice.refresh_from_db()
    assert alice.score == 10

