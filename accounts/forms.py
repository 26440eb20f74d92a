"""Forms behind the sign-in and registration pages."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm


class SignInForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password do not match an account. Check both and try again "
        "(the password is case-sensitive).",
        "inactive": "This account is disabled.",
        "banned": "This account has been banned from Scoreboard.",
    }

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autocapitalize="none")
        self.fields["password"].widget.attrs.update(autocomplete="current-password")

    def confirm_login_allowed(self, user: object) -> None:
        # Checked only after the password matched, so a ban is not revealed to someone guessing passwords.
        super().confirm_login_allowed(user)
        if getattr(user, "is_banned", False):
            raise forms.ValidationError(self.error_messages["banned"], code="banned")


class RegisterForm(UserCreationForm):
    """Username and password twice; Django checks the password rules and case-insensitive uniqueness."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autocapitalize="none")
        self.fields["username"].help_text = "Up to 150 letters, digits and @ . + - _ — this is the name on the board."
        for name in ("password1", "password2"):
            self.fields[name].widget.attrs.update(autocomplete="new-password")
        self.error_messages = {**self.error_messages, "password_mismatch": "The two passwords are different."}


def field_ids(form: forms.Form) -> None:
    """Mark invalid fields for assistive technology (aria-invalid, aria-describedby pointing at the error)."""
    for name in form.errors:
        if name in form.fields:
            attrs = form.fields[name].widget.attrs
            attrs["aria-invalid"] = "true"
            attrs["aria-describedby"] = f"{name}-errors"
