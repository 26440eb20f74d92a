"""Trusted game servers (API clients) and the idempotency store of their requests."""

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

KEY_PREFIX = "sbk_"


def hash_key(raw_key: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash suffices (no password-style stretching needed).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def validate_scopes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ValidationError('Scopes must be a list of strings, e.g. ["scores:award"].')


class ApiClient(models.Model):
    """A game server allowed to award points. Only the key's hash is stored; the key is shown once."""

    SCOPE_AWARD = "scores:award"

    name = models.CharField(max_length=120, unique=True)
    scopes = models.JSONField(
        default=list, blank=True, validators=[validate_scopes], help_text='A list of scopes, e.g. ["scores:award"].'
    )
    is_active = models.BooleanField(default=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(max_length=16, editable=False, help_text="The first characters of the key.")
    # The HMAC secret must be readable to verify signatures, so it is stored as is; empty means unsigned requests.
    signing_secret = models.CharField(max_length=128, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def requires_signature(self) -> bool:
        return bool(self.signing_secret)

    def has_scope(self, scope: str) -> bool:
        # Only a list grants: `in` on a string or a dict would match "scores:award-readonly" or {"scores:award": false}.
        return isinstance(self.scopes, list) and scope in self.scopes

    def set_new_key(self) -> str:
        """Give the client a fresh key and return it; the caller shows it once, only its hash is kept."""
        raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.key_hash = hash_key(raw_key)
        self.key_hint = raw_key[:10]
        return raw_key

    def set_new_signing_secret(self) -> str:
        self.signing_secret = secrets.token_hex(32)
        return self.signing_secret


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one client: the request it named and, once done, the response it got."""

    class Status(models.TextChoices):
        IN_FLIGHT = "in_flight"
        DONE = "done"

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # A signed request's X-Signature: unique per client, so a captured request cannot be replayed under a new key.
    signature = models.CharField(max_length=80, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_one_record_per_key"),
            models.UniqueConstraint(
                fields=["client", "signature"], condition=~Q(signature=""), name="idempotency_one_use_per_signature"
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.client} {self.key} ({self.status})"
