"""How the integration tests call POST /api/v1/scores as a game server: the API key, the Idempotency-Key and, for
clients configured for signing, the X-Timestamp and X-Signature headers."""

import json
import time

from rest_framework.test import APIClient

from integrations.authentication import sign
from scores.models import ScoreEvent

URL = "/api/v1/scores"


def post(raw_key: str | None, body: object, *, key: str | None = "key-1", extra: dict | None = None):
    headers = {}
    if raw_key is not None:
        headers["HTTP_X_API_KEY"] = raw_key
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return APIClient().generic("POST", URL, raw, content_type="application/json", **headers, **(extra or {}))


def signed_headers(secret: str, body: bytes, *, at: float | None = None) -> dict:
    timestamp = str(int(at if at is not None else time.time()))
    return {"HTTP_X_TIMESTAMP": timestamp, "HTTP_X_SIGNATURE": sign(secret=secret, timestamp=timestamp, body=body)}


def nothing_awarded(user) -> None:
    user.refresh_from_db()
    assert user.score == 0
    assert not ScoreEvent.objects.exists()


def signed_post(raw_key: str, secret: str, body: dict, *, at: float | None = None, tamper: bytes | None = None):
    raw = json.dumps(body).encode()
    headers = signed_headers(secret, raw, at=at)
    return post(raw_key, tamper if tamper is not None else raw, extra=headers)

