from rest_framework import serializers

from scoreboard_project.fields import StrictCharField, StrictUUIDField


class AwardScoreSerializer(serializers.Serializer):
    """What a game server may say: who did which action. Points come from the action type, never from here."""

    userId = StrictUUIDField()  # noqa: N815 - the API's field names
    actionType = StrictCharField(max_length=64)  # noqa: N815


class AwardScoreResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["success"])
    userId = serializers.UUIDField()  # noqa: N815
    pointsAwarded = serializers.IntegerField()  # noqa: N815
    score = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True)
