"""The idempotency store: each (client, Idempotency-Key) names one request and, once done, its one response."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.models import ApiClient, IdempotencyRecord
from scores.exceptions import ScoreboardError


class IdempotencyKeyReused(ScoreboardError):
    http_status = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used with a different request body."


class SignatureReused(ScoreboardError):
    http_status = 401
    code = "signature_reused"
    message = "This signed request was already sent under another Idempotency-Key: a replay."


class IdempotencyInFlight(ScoreboardError):
    http_status = 409
    code = "idempotency_in_flight"
    message = "A request with this Idempotency-Key is still being processed; retry shortly."


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict


def request_hash(*, method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def begin(*, client: ApiClient, key: str, fingerprint: str, signature: str = "") -> IdempotencyRecord | Replay:
    """Claim `key` for this request, or answer with the stored response of its first use.

    Raises IdempotencyKeyReused (another body), IdempotencyInFlight (the first use is still running) and
    SignatureReused (a signed request seen before under another key).
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                client=client, key=key, request_hash=fingerprint, signature=signature, created_at=now
            )
    except IntegrityError:
        pass  # the key (or the signature) is known: decide below, on the locked row
    with transaction.atomic():
        record = IdempotencyRecord.objects.select_for_update().filter(client=client, key=key).first()
        if record is None:
            if signature and IdempotencyRecord.objects.filter(client=client, signature=signature).exists():
                raise SignatureReused()
            raise IdempotencyInFlight()  # purged between our two statements: the client retries
        if record.created_at < now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
            return _restart(record, fingerprint=fingerprint, now=now)
        if record.request_hash != fingerprint:
            raise IdempotencyKeyReused()
        if record.status == IdempotencyRecord.Status.DONE:
            return Replay(status=record.response_status, body=record.response_body)
        if record.created_at < now - timedelta(seconds=settings.IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS):
            # The first attempt died: its work and its `done` commit together, so nothing of it was applied.
            return _restart(record, fingerprint=fingerprint, now=now)
        raise IdempotencyInFlight()


def lock_claim(record: IdempotencyRecord) -> None:
    """Inside the work's transaction: lock our claim, and raise IdempotencyInFlight if another request took it over."""
    current = IdempotencyRecord.objects.select_for_update().get(pk=record.pk)
    if current.status != IdempotencyRecord.Status.IN_FLIGHT or current.created_at != record.created_at:
        raise IdempotencyInFlight()


def finish(record: IdempotencyRecord, *, status: int, body: dict) -> None:
    """Store the response of the claimed request; later uses of the key replay it."""
    IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at).update(
        status=IdempotencyRecord.Status.DONE, response_status=status, response_body=body
    )


def abandon(record: IdempotencyRecord) -> None:
    """Release a claim whose request failed unexpectedly, so the client may retry with the same key."""
    IdempotencyRecord.objects.filter(
        pk=record.pk, created_at=record.created_at, status=IdempotencyRecord.Status.IN_FLIGHT
    ).delete()


def purge_expired() -> int:
    """Delete records older than IDEMPOTENCY_KEY_TTL_HOURS; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()[0]


def _restart(record: IdempotencyRecord, *, fingerprint: str, now: object) -> IdempotencyRecord:
    record.request_hash, record.status, record.created_at = fingerprint, IdempotencyRecord.Status.IN_FLIGHT, now
    record.response_status = record.response_body = None
    record.save()
    return record
