from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from scoreboard_project.fields import StrictCharField

User = get_user_model()


def minimum_password_length() -> int:
    lengths = [validator.min_length for validator in password_validation.get_default_password_validators()
               if isinstance(validator, password_validation.MinimumLengthValidator)]
    return max(lengths, default=1)


class RegisterSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150, validators=[User.username_validator])
    # min_length states the validators' shortest length (so the schema does too); validate() runs them all.
    password = StrictCharField(
        min_length=minimum_password_length(), max_length=128, write_only=True, trim_whitespace=False
    )
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        candidate = User(username=attrs["username"], email=attrs.get("email", ""))
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs


class LoginSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False)


class RefreshTokenSerializer(serializers.Serializer):
    refreshToken = StrictCharField()  # noqa: N815 - the API's field name
