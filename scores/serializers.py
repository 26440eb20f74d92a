import json
from collections.abc import Iterator

from django.conf import settings
from rest_framework import serializers

from scoreboard_project.fields import StrictCharField
from scores import leaderboard
from scores.models import Action, ActionType


class ActionTypeSerializer(serializers.ModelSerializer):
    minDurationSeconds = serializers.IntegerField(source="min_duration_seconds")  # noqa: N815
    maxDurationSeconds = serializers.IntegerField(source="max_duration_seconds")  # noqa: N815

    class Meta:
        model = ActionType
        fields = ["code", "name", "points", "minDurationSeconds", "maxDurationSeconds"]


class StartActionSerializer(serializers.Serializer):
    actionType = StrictCharField(max_length=64)  # noqa: N815
    metadata = serializers.DictField(required=False, default=dict)

    def validate_metadata(self, value: dict) -> dict:
        if _depth(value) > settings.ACTION_METADATA_MAX_DEPTH:
            raise serializers.ValidationError(
                f"metadata may nest at most {settings.ACTION_METADATA_MAX_DEPTH} levels deep."
            )
        if not all(_storable(text) for text in _strings(value)):
            # PostgreSQL's jsonb refuses both: a 400 here, not a database error.
            raise serializers.ValidationError("metadata may not contain NUL characters or unpaired surrogates.")
        try:
            size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
        except ValueError:
            # 1e400 parses as infinity, which jsonb cannot store either.
            raise serializers.ValidationError("metadata numbers must be finite.") from None
        if size > settings.ACTION_METADATA_MAX_BYTES:
            raise serializers.ValidationError(
                f"metadata is {size} bytes; at most {settings.ACTION_METADATA_MAX_BYTES} are accepted."
            )
        return value


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _storable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _depth(value: object) -> int:
    # Iterative, so a hostile document cannot exhaust the stack here either.
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class UpdateActionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[Action.Status.COMPLETED.value, Action.Status.CANCELLED.value])


class ActionSerializer(serializers.ModelSerializer):
    actionId = serializers.CharField(source="id")  # noqa: N815
    userId = serializers.CharField(source="user_id")  # noqa: N815
    actionType = serializers.CharField(source="action_type.code")  # noqa: N815
    startedAt = serializers.DateTimeField(source="started_at")  # noqa: N815
    expiresAt = serializers.DateTimeField(source="expires_at")  # noqa: N815
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)  # noqa: N815
    pointsAwarded = serializers.IntegerField(source="points_awarded")  # noqa: N815

    class Meta:
        model = Action
        fields = ["actionId", "userId", "actionType", "status", "startedAt", "expiresAt", "completedAt", "pointsAwarded"]


class LeaderboardQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=settings.LEADERBOARD_MAX_LIMIT, default=10)
    around = serializers.ChoiceField(choices=["me"], required=False)
    period = serializers.ChoiceField(choices=list(leaderboard.PERIODS), default=leaderboard.ALL_TIME)
