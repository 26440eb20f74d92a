import json
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from integrations.authentication import sign
from integrations.models import ApiClient, IdempotencyRecord
from scores.models import Action, ActionType, ScoreEvent
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

URL = "/api/v1/scores"


def _post(raw_key: str | None, body: object, *, key: str | None = "key-1", extra: dict | None = None):
    headers = {}
    if raw_key is not None:
        headers["HTTP_X_API_KEY"] = raw_key
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return APIClient().generic("POST", URL, raw, content_type="application/json", **headers, **(extra or {}))


def _signed_headers(secret: str, body: bytes, *, at: float | None = None) -> dict:
    timestamp = str(int(at if at is not None else time.time()))
    return {"HTTP_X_TIMESTAMP": timestamp, "HTTP_X_SIGNATURE": sign(secret=secret, timestamp=timestamp, body=body)}


def _nothing_awarded(user) -> None:
    user.refresh_from_db()
    assert user.score == 0
    assert not ScoreEvent.objects.exists()


def test_award_pays_the_type_points_and_reports_score_and_rank(make_api_client, alice, bob, quick_type):
    _, raw_key, _ = make_api_client()
    response = _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    assert response.status_code == 200
    assert response.json() == {"status": "success", "userId": str(alice.pk), "pointsAwarded": 10, "score": 10, "rank": 1}
    action = Action.objects.get()
    assert (action.status, action.points_awarded, action.metadata["apiClient"]) == ("completed", 10, "game-server")
    assert ScoreEvent.objects.get().delta == 10


def test_points_in_the_body_are_ignored(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    response = _post(raw_key, {"userId": str(alice.pk), "actionType": "quick", "points": 10**6, "score": 10**6})
    assert response.json()["pointsAwarded"] == 10
    alice.refresh_from_db()
    assert alice.score == 10


@pytest.mark.parametrize("raw_key", [None, "", "sbk_not-a-real-key"])
def test_missing_or_wrong_key_is_401(make_api_client, alice, quick_type, raw_key):
    make_api_client()
    response = _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}
    _nothing_awarded(alice)


def test_inactive_client_is_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(active=False)
    assert _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 401
    _nothing_awarded(alice)


def test_client_without_the_award_scope_is_403(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(scopes=["scores:read"])
    assert _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 403
    _nothing_awarded(alice)


def test_player_jwt_cannot_award(as_alice, alice, quick_type):
    response = as_alice.post(URL, {"userId": str(alice.pk), "actionType": "quick"}, format="json",
                             HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 401
    _nothing_awarded(alice)


@pytest.mark.parametrize("key", [None, "", "x" * 256, "bad\x01key"])
def test_missing_or_bad_idempotency_key_is_400(make_api_client, alice, quick_type, key):
    _, raw_key, _ = make_api_client()
    response = _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    _nothing_awarded(alice)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", {"userId": "not-a-uuid", "actionType": "quick"}, {"actionType": "quick"}, {"userId": None}],
)
def test_malformed_body_is_400(make_api_client, alice, quick_type, body):
    _, raw_key, _ = make_api_client()
    response = _post(raw_key, body)
    assert response.status_code == 400
    _nothing_awarded(alice)


def test_unknown_user_is_404(make_api_client, quick_type):
    _, raw_key, _ = make_api_client()
    response = _post(raw_key, {"userId": str(uuid.uuid4()), "actionType": "quick"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"
    assert not ScoreEvent.objects.exists()


def test_unknown_or_inactive_action_type_is_422(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    assert _post(raw_key, {"userId": str(alice.pk), "actionType": "nope"}, key="a").status_code == 422
    ActionType.objects.update(is_active=False)
    response = _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}, key="b")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_action_type"
    _nothing_awarded(alice)


def test_award_to_a_banned_user_is_refused(make_api_client, alice, quick_type):
    from accounts.services import ban_user

    _, raw_key, _ = make_api_client()
    ban_user(user_id=alice.pk)
    assert _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 403
    _nothing_awarded(alice)


# --- idempotency ---------------------------------------------------------------------------------------


def test_same_key_same_body_replays_and_awards_nothing(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    first = _post(raw_key, body)
    again = _post(raw_key, body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.count() == 1


def test_same_key_other_body_is_422(make_api_client, alice, bob, quick_type):
    _, raw_key, _ = make_api_client()
    _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    response = _post(raw_key, {"userId": str(bob.pk), "actionType": "quick"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    bob.refresh_from_db()
    assert bob.score == 0


def test_keys_belong_to_one_client(make_api_client, alice, quick_type):
    _, key_a, _ = make_api_client("a")
    _, key_b, _ = make_api_client("b")
    body = {"userId": str(alice.pk), "actionType": "quick"}
    _post(key_a, body)
    assert "Idempotent-Replayed" not in _post(key_b, body)
    alice.refresh_from_db()
    assert alice.score == 20


def test_a_refusal_is_replayed_too(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "later"}
    assert _post(raw_key, body).status_code == 422
    ActionType.objects.create(code="later", name="Later", points=5)
    replay = _post(raw_key, body)
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (422, "true")
    _nothing_awarded(alice)


def test_duplicate_while_in_flight_is_409(make_api_client, alice, quick_type):
    client, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    first = _post(raw_key, body)
    record = IdempotencyRecord.objects.get()
    # The same request, still being worked on by another worker:
    IdempotencyRecord.objects.create(
        client=client, key="busy", request_hash=record.request_hash, created_at=timezone.now()
    )
    response = _post(raw_key, body, key="busy")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_flight"
    assert first.status_code == 200
    alice.refresh_from_db()
    assert alice.score == 10


def test_a_claim_abandoned_by_a_dead_worker_is_retried(make_api_client, alice, quick_type):
    client, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    _post(raw_key, body, key="probe")
    fingerprint = IdempotencyRecord.objects.get().request_hash
    IdempotencyRecord.objects.create(
        client=client, key="stale", request_hash=fingerprint, created_at=timezone.now() - timedelta(minutes=5)
    )
    assert _post(raw_key, body, key="stale").status_code == 200
    alice.refresh_from_db()
    assert alice.score == 20


def test_keys_are_kept_24_hours_then_purged(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    _post(raw_key, body)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    call_command("purge_idempotency_keys")
    assert _post(raw_key, body)["Idempotent-Replayed"] == "true"

    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    call_command("purge_idempotency_keys")
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_award_once(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}

    def send(_: int) -> str:
        response = _post(raw_key, body, key="same")
        replayed = response.get("Idempotent-Replayed") == "true"
        return f"{response.status_code}{' replay' if replayed else ''}"

    statuses = run_at_once(send, 10)
    # Exactly one request did the work; the others were told it is in flight (409) or got its replay.
    assert statuses.count("200") == 1
    assert set(statuses) <= {"200", "200 replay", "409"}
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.count() == 1


# --- signatures ----------------------------------------------------------------------------------------


def _signed_post(raw_key: str, secret: str, body: dict, *, at: float | None = None, tamper: bytes | None = None):
    raw = json.dumps(body).encode()
    headers = _signed_headers(secret, raw, at=at)
    return _post(raw_key, tamper if tamper is not None else raw, extra=headers)


def test_signed_client_with_a_good_signature_is_served(make_api_client, alice, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    assert _signed_post(raw_key, secret, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 200


def test_signed_client_without_a_signature_is_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(signed=True)
    response = _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    _nothing_awarded(alice)


def test_tampered_body_is_401(make_api_client, alice, bob, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    tampered = json.dumps({"userId": str(bob.pk), "actionType": "quick"}).encode()
    assert _signed_post(raw_key, secret, {"userId": str(alice.pk), "actionType": "quick"}, tamper=tampered).status_code == 401
    _nothing_awarded(bob)


# A few seconds past the 300 s allowance: the header carries whole seconds and a loaded CI box may take a while
# between signing and checking, so 301 could land inside the window.
@pytest.mark.parametrize("offset", [-305, 305, -3600])
def test_stale_or_future_timestamp_is_401(make_api_client, alice, quick_type, offset):
    _, raw_key, secret = make_api_client(signed=True)
    response = _signed_post(raw_key, secret, {"userId": str(alice.pk), "actionType": "quick"}, at=time.time() + offset)
    assert response.status_code == 401
    _nothing_awarded(alice)


def test_signature_with_the_wrong_secret_is_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(signed=True)
    assert _signed_post(raw_key, "0" * 64, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 401
    _nothing_awarded(alice)


# --- admin -----------------------------------------------------------------------------------------------


def test_admin_shows_the_key_once_and_stores_only_its_hash(client, admin_user, alice, quick_type):
    client.force_login(admin_user)
    response = client.post(
        "/admin/integrations/apiclient/add/",
        {"name": "arcade", "scopes": '["scores:award"]', "is_active": "on"},
        follow=True,
    )
    text = response.content.decode()
    raw_key = text.split("it is not shown again): ")[1].split("<")[0].strip()
    stored = ApiClient.objects.get(name="arcade")
    assert raw_key.startswith("sbk_") and raw_key not in stored.key_hash
    assert raw_key not in client.get(f"/admin/integrations/apiclient/{stored.pk}/change/").content.decode()
    assert _post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 200


def test_award_rate_limit_per_client(settings, make_api_client, alice, quick_type):
    settings.RATE_LIMIT_API_CLIENT = "2/m"
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    assert [_post(raw_key, body, key=f"k{n}").status_code for n in range(2)] == [200, 200]
    response = _post(raw_key, body, key="k3")
    assert response.status_code == 429 and response["Retry-After"]
    alice.refresh_from_db()
    assert alice.score == 20


def test_captured_signed_request_cannot_be_replayed_under_a_new_key(make_api_client, alice, quick_type):
    _, raw_key, secret = make_api_client(signed=True)
    raw = json.dumps({"userId": str(alice.pk), "actionType": "quick"}).encode()
    headers = _signed_headers(secret, raw)
    assert _post(raw_key, raw, key="original", extra=headers).status_code == 200
    replay = _post(raw_key, raw, key="original", extra=headers)
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (200, "true")

    attack = _post(raw_key, raw, key="fresh-key", extra=headers)
    assert attack.status_code == 401
    assert attack.json()["error"]["code"] == "signature_reused"
    alice.refresh_from_db()
    assert alice.score == 10
