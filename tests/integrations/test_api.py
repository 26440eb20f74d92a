import uuid

import pytest

from scores.models import Action, ActionType, ScoreEvent
from tests.integrations.award import URL, nothing_awarded, post

pytestmark = pytest.mark.django_db


def test_award_pays_the_type_points_and_reports_score_and_rank(make_api_client, alice, bob, quick_type):
    _, raw_key, _ = make_api_client()
    response = post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    assert response.status_code == 200
    assert response.json() == {"status": "success", "userId": str(alice.pk), "pointsAwarded": 10, "score": 10, "rank": 1}
    action = Action.objects.get()
    assert (action.status, action.points_awarded, action.metadata["apiClient"]) == ("completed", 10, "game-server")
    assert ScoreEvent.objects.get().delta == 10


def test_points_in_the_body_are_ignored(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    response = post(raw_key, {"userId": str(alice.pk), "actionType": "quick", "points": 10**6, "score": 10**6})
    assert response.json()["pointsAwarded"] == 10
    alice.refresh_from_db()
    assert alice.score == 10


@pytest.mark.parametrize("raw_key", [None, "", "sbk_not-a-real-key"])
def test_missing_or_wrong_key_is_401(make_api_client, alice, quick_type, raw_key):
    make_api_client()
    response = post(raw_key, {"userId": str(alice.pk), "actionType": "quick"})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}
    nothing_awarded(alice)


def test_inactive_client_is_401(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client(active=False)
    assert post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 401
    nothing_awarded(alice)


# Scopes that are not a list (saved before the admin checked them) grant nothing, even when `in` would match.
@pytest.mark.parametrize("scopes", [["scores:read"], "scores:award", "scores:award-readonly", {"scores:award": False}])
def test_client_without_the_award_scope_is_403(make_api_client, alice, quick_type, scopes):
    _, raw_key, _ = make_api_client(scopes=scopes)
    assert post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 403
    nothing_awarded(alice)


def test_player_jwt_cannot_award(as_alice, alice, quick_type):
    response = as_alice.post(URL, {"userId": str(alice.pk), "actionType": "quick"}, format="json",
                             HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 401
    nothing_awarded(alice)


@pytest.mark.parametrize("key", [None, "", "x" * 256, "bad\x01key"])
def test_missing_or_bad_idempotency_key_is_400(make_api_client, alice, quick_type, key):
    _, raw_key, _ = make_api_client()
    response = post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    nothing_awarded(alice)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", {"userId": "not-a-uuid", "actionType": "quick"}, {"actionType": "quick"}, {"userId": None},
     # A number or boolean is not converted into a UUID.
     {"userId": True, "actionType": "quick"}, {"userId": 5, "actionType": "quick"},
     {"userId": 2**128 - 1, "actionType": "quick"}],
)
def test_malformed_body_is_400(make_api_client, alice, quick_type, body):
    _, raw_key, _ = make_api_client()
    response = post(raw_key, body)
    assert response.status_code == 400
    nothing_awarded(alice)


def test_a_number_for_action_type_is_400_not_coerced(make_api_client, alice):
    ActionType.objects.create(code="5", name="Five", points=5, min_duration_seconds=0, max_duration_seconds=60)
    _, raw_key, _ = make_api_client()
    response = post(raw_key, {"userId": str(alice.pk), "actionType": 5})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    nothing_awarded(alice)


def test_unknown_user_is_404(make_api_client, quick_type):
    _, raw_key, _ = make_api_client()
    response = post(raw_key, {"userId": str(uuid.uuid4()), "actionType": "quick"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"
    assert not ScoreEvent.objects.exists()


def test_unknown_or_inactive_action_type_is_422(make_api_client, alice, quick_type):
    _, raw_key, _ = make_api_client()
    assert post(raw_key, {"userId": str(alice.pk), "actionType": "nope"}, key="a").status_code == 422
    ActionType.objects.update(is_active=False)
    response = post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}, key="b")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_action_type"
    nothing_awarded(alice)


def test_award_to_a_banned_user_is_refused(make_api_client, alice, quick_type):
    from accounts.services import ban_user

    _, raw_key, _ = make_api_client()
    ban_user(user_id=alice.pk)
    assert post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 403
    nothing_awarded(alice)


def test_award_rate_limit_per_client(settings, make_api_client, alice, quick_type):
    settings.RATE_LIMIT_API_CLIENT = "2/h"
    _, raw_key, _ = make_api_client()
    body = {"userId": str(alice.pk), "actionType": "quick"}
    assert [post(raw_key, body, key=f"k{n}").status_code for n in range(2)] == [200, 200]
    response = post(raw_key, body, key="k3")
    assert response.status_code == 429 and response["Retry-After"]
    alice.refresh_from_db()
    assert alice.score == 20

