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

    # The account stores the names as create_user normalises them (NFKC username, lower-cased email domain), which
    # can lengthen them or make two spellings one name: the limits and the uniqueness check apply to that form.
    def validate_username(self, value: str) -> str:
        value = User.normalize_username(value)
        if len(value) > 150:
            raise serializers.ValidationError("Ensure this field has no more than 150 characters.")
        User.username_validator(value)
        return value

    def validate_email(self, value: str) -> str:
        value = User.objects.normalize_email(value)
        if len(value) > 254:
            raise serializers.ValidationError("Ensure this field has no more than 254 characters.")
        return value

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
