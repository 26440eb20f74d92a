from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.models import IdempotencyRecord
from scores.models import ActionType, ScoreEvent
from tests.concurrency import run_at_once
from tests.integrations.award import nothing_awarded, post

pytestmark = pytest.mark.django_db


def test_same_key_same_body_replays_and_awards_nothing(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    first = post(raw_key, body)
    again = post(raw_key, body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.count() == 1


def test_same_key_other_body_is_422(make_api_client, alice, bob, quick_type):
    _, raw_key, _ = make_api_client()
    post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    response = post(raw_key, {"userId": str(bob.pk), "actionType": "quick"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    bob.refresh_from_db()
    assert bob.score == 0


def test_keys_belong_to_one_client(make_api_client, alice, quick_type):
    _, key_a, _ = make_api_client("a")
    _, key_b, _ = make_api_client("b")
    body = {"userId": str(alice.pk), "actionType": "quick"}
    post(key_a, body)
    assert "Idempotent-Replayed" not in post(key_b, body)
    alice.refresh_from_db()
    assert alice.score == 20


def test_a_refusal_is_replayed_too(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "later"}
    assert post(raw_key, body).status_code == 422
    ActionType.objects.create(code="later", name="Later", points=5)
    replay = post(raw_key, body)
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (422, "true")
    nothing_awarded(alice)


def test_duplicate_while_in_flight_is_409(make_api_client, alice, quick_type):
    client, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    first = post(raw_key, body)
    record = IdempotencyRecord.objects.get()
    # The same request, still being worked on by another worker:
    IdempotencyRecord.objects.create(
        client=client, key="busy", request_hash=record.request_hash, created_at=timezone.now()
    )
    response = post(raw_key, body, key="busy")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_flight"
    assert first.status_code == 200
    alice.refresh_from_db()
    assert alice.score == 10


def test_a_claim_abandoned_by_a_dead_worker_is_retried(make_api_client, alice, quick_type):
    client, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    post(raw_key, body, key="probe")
    fingerprint = IdempotencyRecord.objects.get().request_hash
    IdempotencyRecord.objects.create(
        client=client, key="stale", request_hash=fingerprint, created_at=timezone.now() - timedelta(minutes=5)
    )
    assert post(raw_key, body, key="stale").status_code == 200
    alice.refresh_from_db()
    assert alice.score == 20


def test_keys_are_kept_24_hours_then_purged(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    post(raw_key, body)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    call_command("purge_idempotency_keys")
    assert post(raw_key, body)["Idempotent-Replayed"] == "true"

    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    call_command("purge_idempotency_keys")
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_award_once(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}

    def send(_: int) -> str:
        response = post(raw_key, body, key="same")
        replayed = response.get("Idempotent-Replayed") == "true"
        return f"{response.status_code}{' replay' if replayed else ''}"

    statuses = run_at_once(send, 10)
    # Exactly one request did the work; the others were told it is in flight (409) or got its replay.
    assert statuses.count("200") == 1
    assert set(statuses) <= {"200", "200 replay", "409"}
    alice.refresh_from_db()
    assert alice.score == 10
    assert ScoreEvent.objects.count() == 1

