"""The OpenAPI description (drf-spectacular, served at /api/schema/, docs at /api/docs/).

Kept here rather than as decorators on the views so the API modules stay thin: each OpenApiViewExtension below
annotates one view. Every error response has the one shape {error: {code, message, details}}.
"""

from django.conf import settings
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers

from accounts.serializers import LoginSerializer, RefreshTokenSerializer, RegisterSerializer
from integrations.api import IDEMPOTENCY_KEY_MAX_LENGTH
from integrations.serializers import AwardScoreResponseSerializer, AwardScoreSerializer
from scores.serializers import (
    ActionSerializer,
    ActionTypeSerializer,
    LeaderboardQuerySerializer,
    StartActionSerializer,
    UpdateActionSerializer,
)


class JWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.JWTAuthentication"


class CookieScheme(SessionScheme):
    target_class = "accounts.authentication.SessionAuthentication"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "integrations.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.JSONField()},
        )
    },
)
_ERROR_MEANINGS = {
    400: "Malformed request (bad JSON, missing or invalid fields).",
    401: "Missing, invalid or expired credentials.",
    403: "Not allowed (another user's resource, a banned account, a missing scope).",
    404: "Not found.",
    409: "Conflict with the current state (action not started, too many open actions, request in flight).",
    413: "Request body too large.",
    415: "Send the body as application/json.",
    422: "Understood but refused (unknown action type, too fast, daily cap, reused idempotency key).",
    429: "Rate limited; see the Retry-After header.",
    503: "The rate limiter is unavailable (only when configured to fail closed).",
}


def _errors(*codes: int) -> dict:
    return {code: OpenApiResponse(ERROR, description=_ERROR_MEANINGS[code]) for code in codes}


_BODY_ERRORS = (400, 413, 415)

TOKEN_PAIR = inline_serializer(
    "TokenPair",
    {
        "accessToken": serializers.CharField(),
        "refreshToken": serializers.CharField(),
        "tokenType": serializers.ChoiceField(choices=["Bearer"]),
        "expiresIn": serializers.IntegerField(),
    },
)
ME = inline_serializer(
    "Me",
    {
        "userId": serializers.UUIDField(),
        "username": serializers.CharField(),
        "score": serializers.IntegerField(),
        "rank": serializers.IntegerField(allow_null=True),
        "ranks": inline_serializer(
            "RankPerPeriod",
            {
                "all-time": serializers.IntegerField(allow_null=True),
                "weekly": serializers.IntegerField(allow_null=True),
                "daily": serializers.IntegerField(allow_null=True),
            },
        ),
    },
)
STARTED_ACTION = inline_serializer(
    "StartedAction",
    {
        "actionId": serializers.UUIDField(),
        "userId": serializers.UUIDField(),
        "actionType": serializers.CharField(),
        "status": serializers.CharField(),
        "startedAt": serializers.DateTimeField(),
        "expiresAt": serializers.DateTimeField(),
    },
)
FINISHED_ACTION = inline_serializer(
    "FinishedAction",
    {
        "actionId": serializers.UUIDField(),
        "status": serializers.CharField(),
        "pointsAwarded": serializers.IntegerField(),
        "score": serializers.IntegerField(),
        "rank": serializers.IntegerField(allow_null=True),
        "completedAt": serializers.DateTimeField(allow_null=True),
    },
)
BOARD = inline_serializer(
    "Board",
    {
        "data": inline_serializer(
            "BoardEntry",
            {
                "rank": serializers.IntegerField(),
                "userId": serializers.UUIDField(),
                "username": serializers.CharField(),
                "score": serializers.IntegerField(),
            },
            many=True,
        ),
        "lastUpdated": serializers.DateTimeField(allow_null=True),
        "version": serializers.IntegerField(),
        "period": serializers.ChoiceField(choices=["all-time", "daily", "weekly"]),
    },
)
USER_PATH = OpenApiParameter("user_id", OpenApiTypes.STR, OpenApiParameter.PATH, description='"me" or your own user id')
ACTION_PATH = OpenApiParameter("action_id", OpenApiTypes.STR, OpenApiParameter.PATH)


def annotate(target: str, **methods: object) -> type:
    """Register an OpenApiViewExtension annotating the view class at dotted path `target`."""

    def view_replacement(self: OpenApiViewExtension) -> type:
        return extend_schema_view(**methods)(type(self.target.__name__, (self.target,), {}))

    name = target.rsplit(".", 1)[1] + "Schema"
    return type(name, (OpenApiViewExtension,), {"target_class": target, "view_replacement": view_replacement})


annotate(
    "accounts.api.RegisterView",
    post=extend_schema(
        summary="Create a player account",
        request=RegisterSerializer,
        responses={
            201: inline_serializer("Registered", {"userId": serializers.UUIDField(), "username": serializers.CharField()}),
            **_errors(*_BODY_ERRORS, 409, 429),
        },
        auth=[],
    ),
)
annotate(
    "accounts.api.LoginView",
    post=extend_schema(
        summary="Log in: an access and a refresh token",
        request=LoginSerializer,
        responses={200: TOKEN_PAIR, **_errors(*_BODY_ERRORS, 401, 403, 429)},
        auth=[],
    ),
)
annotate(
    "accounts.api.RefreshView",
    post=extend_schema(
        summary="Rotate a refresh token (the old one is blacklisted)",
        request=RefreshTokenSerializer,
        responses={200: TOKEN_PAIR, **_errors(*_BODY_ERRORS, 401)},
        auth=[],
    ),
)
annotate(
    "accounts.api.LogoutView",
    post=extend_schema(
        summary="Blacklist a refresh token",
        request=RefreshTokenSerializer,
        responses={204: OpenApiResponse(description="Logged out."), **_errors(*_BODY_ERRORS, 401)},
        auth=[],
    ),
)
annotate(
    "accounts.api.MeView",
    get=extend_schema(summary="The caller's score and rank", responses={200: ME, **_errors(401, 403)}),
)
annotate(
    "scores.api.ActionTypeListView",
    get=extend_schema(
        summary="Active action types and their points",
        responses={
            200: inline_serializer("ActionTypes", {"data": ActionTypeSerializer(many=True)}),
            **_errors(401, 403),
        },
    ),
)
annotate(
    "scores.api.UserActionsView",
    get=extend_schema(
        summary="The caller's actions, newest first",
        parameters=[
            USER_PATH,
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 100},
                             description="Page size, 1 to 100 (default 20)"),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the `next`/`previous` links"),
        ],
        responses={
            200: inline_serializer(
                "ActionPage",
                {
                    "data": ActionSerializer(many=True),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                },
            ),
            **_errors(400, 401, 403, 404),
        },
    ),
    post=extend_schema(
        summary="Start an action (points are decided by the server)",
        parameters=[USER_PATH],
        request=StartActionSerializer,
        responses={201: STARTED_ACTION, **_errors(*_BODY_ERRORS, 401, 403, 409, 422, 429, 503)},
    ),
)
annotate(
    "scores.api.UserActionView",
    put=extend_schema(
        summary="Complete or cancel a started action",
        parameters=[USER_PATH, ACTION_PATH],
        request=UpdateActionSerializer,
        responses={200: FINISHED_ACTION, **_errors(*_BODY_ERRORS, 401, 403, 404, 409, 422, 429, 503)},
    ),
)
annotate(
    "scores.api.LeaderboardView",
    get=extend_schema(
        summary="The board: top N, or the window around the caller, all-time or for today / this ISO week (UTC)",
        parameters=[LeaderboardQuerySerializer],
        responses={200: BOARD, **_errors(400, 401, 403)},
    ),
)
annotate(
    "integrations.api.AwardScoreView",
    post=extend_schema(
        summary="A trusted game server awards one action's points to a player",
        description=(
            "Points come from the action type (times any running multiplier), never from the body. "
            "Idempotency-Key is required: the same key with the same body replays the first response with "
            "`Idempotent-Replayed: true`; another body gets 422; a duplicate still in flight gets 409. "
            "Clients configured for signing send X-Timestamp (Unix seconds, within "
            f"{settings.API_SIGNATURE_MAX_SKEW_SECONDS} s) and X-Signature: sha256=<hex HMAC of timestamp + '.' + body>."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
                OpenApiParameter.HEADER,
                required=True,
            ),
            OpenApiParameter("X-Timestamp", OpenApiTypes.STR, OpenApiParameter.HEADER),
            OpenApiParameter("X-Signature", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        request=AwardScoreSerializer,
        responses={200: AwardScoreResponseSerializer, **_errors(*_BODY_ERRORS, 401, 403, 404, 409, 422, 429, 503)},
    ),
)
