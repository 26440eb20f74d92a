import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from scores.models import Action, ScoreEvent

pytestmark = pytest.mark.django_db

BOARD = "/api/v1/leaderboard"


def _start(client, code="quick", user="me", **extra):
    return client.post(f"/api/v1/users/{user}/actions", {"actionType": code, **extra}, format="json")


def _finish(client, action_id, status="completed", user="me"):
    return client.put(f"/api/v1/users/{user}/actions/{action_id}", {"status": status}, format="json")


def _play(client, code="quick") -> dict:
    return _finish(client, _start(client, code).json()["actionId"]).json()


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_action_types_lists_active_types(anon, quick_type, slow_type):
    slow_type.is_active = False
    slow_type.save()
    response = anon.get("/api/v1/action-types")
    assert response.status_code == 200
    assert response.json() == {
        "data": [{"code": "quick", "name": "Quick", "points": 10, "minDurationSeconds": 0, "maxDurationSeconds": 3600}]
    }


def test_start_action(as_alice, alice, quick_type):
    response = _start(as_alice, metadata={"level": 3})
    assert response.status_code == 201
    body = response.json()
    action = Action.objects.get(pk=body["actionId"])
    assert body["userId"] == str(alice.pk) and body["actionType"] == "quick" and body["status"] == "started"
    assert action.metadata == {"level": 3} and action.client_ip == "127.0.0.1"
    assert set(body) == {"actionId", "userId", "actionType", "status", "startedAt", "expiresAt"}


def test_start_with_own_id_in_path(as_alice, alice, quick_type):
    assert _start(as_alice, user=str(alice.pk)).status_code == 201


def test_complete_pays_server_points_once(as_alice, alice, quick_type):
    action_id = _start(as_alice).json()["actionId"]
    response = _finish(as_alice, action_id)
    assert response.status_code == 200
    body = response.json()
    assert body["actionId"] == action_id and body["status"] == "completed"
    assert (body["pointsAwarded"], body["score"], body["rank"]) == (10, 10, 1)
    assert body["completedAt"]

    again = _finish(as_alice, action_id)
    assert again.status_code == 409
    assert _error(again)["details"] == {"status": "completed"}
    alice.refresh_from_db()
    assert alice.score == 10 and ScoreEvent.objects.count() == 1


def test_client_cannot_choose_points(as_alice, alice, quick_type):
    response = _start(as_alice, points=1_000_000)
    action_id = response.json()["actionId"]
    body = as_alice.put(
        f"/api/v1/users/me/actions/{action_id}", {"status": "completed", "points": 1_000_000}, format="json"
    ).json()
    assert body["pointsAwarded"] == 10 and body["score"] == 10


def test_cancel(as_alice, alice, quick_type):
    action_id = _start(as_alice).json()["actionId"]
    body = _finish(as_alice, action_id, "cancelled").json()
    assert (body["status"], body["pointsAwarded"], body["score"], body["rank"], body["completedAt"]) == (
        "cancelled", 0, 0, None, None
    )


def test_too_fast_is_422_and_action_stays_started(as_alice, slow_type):
    action_id = _start(as_alice, "slow").json()["actionId"]
    response = _finish(as_alice, action_id)
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "action_too_fast" and 59 < error["details"]["secondsRemaining"] <= 60
    assert Action.objects.get(pk=action_id).status == "started"


def test_overdue_action_expires_with_409(as_alice, alice, slow_type):
    action_id = _start(as_alice, "slow").json()["actionId"]
    Action.objects.filter(pk=action_id).update(started_at=timezone.now() - timedelta(seconds=601))
    response = _finish(as_alice, action_id)
    assert response.status_code == 409
    assert _error(response)["details"] == {"status": "expired"}
    assert Action.objects.get(pk=action_id).status == "expired"


def test_unknown_or_inactive_type_is_422(as_alice, quick_type):
    quick_type.is_active = False
    quick_type.save()
    for code in ("quick", "nope"):
        response = _start(as_alice, code)
        assert response.status_code == 422
        assert _error(response)["code"] == "unknown_action_type"
    assert Action.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"actionType": 5}, {"actionType": ["quick"]}, {"actionType": "quick", "metadata": "x"},
     {"actionType": "quick", "metadata": {"blob": "x" * 5000}}],
)
def test_start_rejects_malformed_bodies(as_alice, quick_type, body):
    response = as_alice.post("/api/v1/users/me/actions", body, format="json")
    assert response.status_code == 400
    assert _error(response)["code"] == "validation_error"
    assert Action.objects.count() == 0


def test_malformed_json_is_400(as_alice, quick_type):
    response = as_alice.post("/api/v1/users/me/actions", "{bad", content_type="application/json")
    assert response.status_code == 400
    assert _error(response)["code"] == "malformed_request"


@pytest.mark.parametrize("status", ["done", "", None, 3, "started", "expired"])
def test_unknown_status_is_400(as_alice, quick_type, status):
    action_id = _start(as_alice).json()["actionId"]
    response = as_alice.put(f"/api/v1/users/me/actions/{action_id}", {"status": status}, format="json")
    assert response.status_code == 400
    assert Action.objects.get(pk=action_id).status == "started"


def test_unknown_action_is_404(as_alice):
    for action_id in (uuid.uuid4(), "not-a-uuid"):
        response = _finish(as_alice, action_id)
        assert response.status_code == 404
        assert _error(response)["code"] == "action_not_found"


def test_other_users_path_is_403(as_bob, alice, quick_type):
    assert _start(as_bob, user=str(alice.pk)).status_code == 403
    assert as_bob.get(f"/api/v1/users/{alice.pk}/actions").status_code == 403
    assert _finish(as_bob, uuid.uuid4(), user=str(alice.pk)).status_code == 403
    assert Action.objects.count() == 0


def test_other_users_action_is_403(as_alice, as_bob, alice, quick_type):
    action_id = _start(as_alice).json()["actionId"]
    response = _finish(as_bob, action_id)
    assert response.status_code == 403
    assert _error(response)["code"] == "forbidden"
    assert Action.objects.get(pk=action_id).status == "started"
    alice.refresh_from_db()
    assert alice.score == 0


def test_actions_need_a_token(anon, quick_type):
    for response in (_start(anon), anon.get("/api/v1/users/me/actions"), _finish(anon, uuid.uuid4())):
        assert response.status_code == 401
        assert _error(response)["code"] == "not_authenticated"


def test_list_own_actions_newest_first_paginated(as_alice, as_bob, quick_type):
    mine = [_start(as_alice).json()["actionId"] for _ in range(3)]
    _start(as_bob)
    response = as_alice.get("/api/v1/users/me/actions?limit=2")
    assert response.status_code == 200
    body = response.json()
    assert [a["actionId"] for a in body["data"]] == mine[::-1][:2]
    rest = as_alice.get(body["next"]).json()
    assert [a["actionId"] for a in rest["data"]] == mine[:1] and rest["next"] is None


def test_leaderboard_order_and_ties(anon, make_user, client_for, quick_type, slow_type):
    players = [make_user(name) for name in ("p1", "p2", "p3")]
    for player in (players[1], players[0], players[2], players[2]):
        _play(client_for(player))
    response = anon.get(BOARD)
    assert response.status_code == 200
    body = response.json()
    # p3 has 20; p2 reached 10 before p1 did.
    assert [(e["rank"], e["username"], e["score"]) for e in body["data"]] == [(1, "p3", 20), (2, "p2", 10), (3, "p1", 10)]
    assert body["data"][0]["userId"] == str(players[2].pk)
    assert body["version"] == ScoreEvent.objects.latest("id").pk and body["lastUpdated"]


def test_leaderboard_version_grows_and_limit_applies(anon, as_alice, as_bob, quick_type):
    empty = anon.get(BOARD).json()
    assert empty == {"data": [], "lastUpdated": None, "version": 0, "period": "all-time"}
    _play(as_alice)
    first = anon.get(BOARD).json()["version"]
    _play(as_bob)
    board = anon.get(f"{BOARD}?limit=1").json()
    assert board["version"] > first and len(board["data"]) == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "around=you"])
def test_leaderboard_bad_query_is_400(anon, query):
    response = anon.get(f"{BOARD}?{query}")
    assert response.status_code == 400
    assert _error(response)["code"] == "validation_error"


def test_leaderboard_around_me(make_user, client_for, anon, quick_type):
    players = [make_user(f"p{i}") for i in range(7)]
    for count, player in enumerate(players):
        for _ in range(7 - count):
            _play(client_for(player))
    window = client_for(players[3]).get(f"{BOARD}?around=me&limit=3").json()["data"]
    assert [(e["rank"], e["username"]) for e in window] == [(3, "p2"), (4, "p3"), (5, "p4")]
    edge = client_for(players[0]).get(f"{BOARD}?around=me&limit=3").json()["data"]
    assert [e["rank"] for e in edge] == [1, 2, 3]
    assert anon.get(f"{BOARD}?around=me").status_code == 401


def test_me_reports_rank_after_scoring(as_alice, as_bob, quick_type):
    _play(as_alice)
    _play(as_bob)
    _play(as_bob)
    assert as_alice.get("/api/v1/users/me").json()["rank"] == 2


def test_unknown_api_path_is_json_404(anon):
    response = anon.get("/api/v1/nope")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_wrong_method_is_json_405(as_alice):
    response = as_alice.delete("/api/v1/leaderboard")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


def test_an_edited_cursor_is_an_invalid_cursor_not_a_server_error(as_alice):
    import base64

    for position in ("p=notadate", "p=2026-13-45", "r=1&p=%00", "p=2026-01-01T00:00:00%2B99:00"):
        cursor = base64.b64encode(position.encode()).decode()
        response = as_alice.get(f"/api/v1/users/me/actions?cursor={cursor}")
        assert response.status_code == 404, position
        assert response.json()["error"]["code"] == "not_found"


def test_metadata_with_a_nul_a_lone_surrogate_or_an_infinite_number_is_refused(as_alice, quick_type):
    for body in ('{"actionType": "quick", "metadata": {"k": "\\u0000"}}',
                 '{"actionType": "quick", "metadata": {"\\u0000": 1}}',
                 '{"actionType": "quick", "metadata": {"k": "\\ud800"}}',
                 '{"actionType": "quick", "metadata": {"k": 1e400}}',  # parses as infinity
                 '{"actionType": "quick", "metadata": {"k": [-1e400]}}'):
        response = as_alice.post("/api/v1/users/me/actions", body, content_type="application/json")
        assert response.status_code == 400, body
        assert "metadata" in response.json()["error"]["details"]
    assert not Action.objects.exists()


def test_unsafe_methods_on_unknown_api_paths_get_a_json_404():
    from rest_framework.test import APIClient

    anon = APIClient(enforce_csrf_checks=True)  # as a real client meets it, with Django's CSRF check on
    for method, path in (("post", "/api/v1/nonexistent"), ("delete", "/api/v1/leaderboard/"),
                         ("put", "/api/v1/users/me/actions/")):
        response = getattr(anon, method)(path, {}, format="json")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_my_actions_refuse_a_limit_outside_1_to_100(as_alice, quick_type):
    # "%C2%B2" is "²" and "%EF%BC%95" a full-width 5: str.isdigit() says yes to both.
    for limit in ("0", "-5", "abc", "1e20", "101", "%C2%B2", "%EF%BC%95", "9" * 5000):
        response = as_alice.get(f"/api/v1/users/me/actions?limit={limit}")
        assert response.status_code == 400, limit
        assert list(response.json()["error"]["details"]) == ["limit"]
    as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json")
    as_alice.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json")
    page = as_alice.get("/api/v1/users/me/actions?limit=1").json()
    assert len(page["data"]) == 1 and page["next"]
