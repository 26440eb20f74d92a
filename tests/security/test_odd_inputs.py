"""Odd inputs found in review: each gets a JSON 4xx in the one error shape, and stores nothing it should not."""

import base64
import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from tests.integrations.award import post
from tests.security.conftest import assert_error

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase"


@pytest.mark.parametrize("path", ["/api/v1/action-types", "/api/v1/leaderboard", "/api/v1/users/me/actions"])
def test_more_query_parameters_than_allowed_is_a_400(as_alice, path):
    assert_error(as_alice.get(f"{path}?" + "&" * 1001), 400, "malformed_request")


def test_signed_award_with_a_timestamp_past_any_float_is_a_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(signed=True)
    body = json.dumps({"userId": str(alice.pk), "actionType": "quick"}).encode()
    refused = post(raw_key, body, extra={"HTTP_X_TIMESTAMP": "9" * 400, "HTTP_X_SIGNATURE": "sha256=00"})
    assert_error(refused, 401)
    alice.refresh_from_db()
    assert alice.score == 0


@pytest.mark.parametrize("username", ["a" * 149 + "\ufb00", "\ufdfa" * 150])
def test_a_username_too_long_once_normalised_is_a_400(anon, username):
    assert_error(anon.post("/api/v1/auth/register", {"username": username, "password": PASSWORD}, format="json"),
                 400, "validation_error")
    assert not get_user_model().objects.exists()


def test_an_email_too_long_once_its_domain_is_lower_cased_is_a_400(anon):
    email = "a@" + ".".join(["\u0130" * 60] * 4) + ".com"  # 249 characters; "İ".lower() is two
    assert len(email) <= 254
    response = anon.post("/api/v1/auth/register", {"username": "zoe", "password": PASSWORD, "email": email},
                         format="json")
    assert_error(response, 400, "validation_error")
    assert not get_user_model().objects.exists()


def test_a_username_equal_once_normalised_is_taken(anon, make_user):
    make_user("Zoe")
    response = anon.post("/api/v1/auth/register", {"username": "\uff5aoe", "password": PASSWORD}, format="json")
    assert_error(response, 409, "username_taken")
    assert get_user_model().objects.filter(username__iexact="zoe").count() == 1


@pytest.mark.parametrize("position", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_cursor_edited_to_a_date_out_of_range_is_a_404(as_alice, position):
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    assert_error(as_alice.get("/api/v1/users/me/actions", {"cursor": cursor}), 404, "not_found")


@pytest.mark.parametrize("claims", [{"exp": 10**12}, {"user_id": "not-a-uuid"}])
def test_logout_with_a_server_signed_token_with_an_unreadable_claim_is_a_401(anon, alice, claims):
    token = RefreshToken.for_user(alice)
    token.payload.update(claims)
    assert_error(anon.post("/api/v1/auth/logout", {"refreshToken": str(token)}, format="json"), 401, "invalid_token")
    assert not BlacklistedToken.objects.exists()
