import pytest

from scores import leaderboard, services
from scores.exceptions import ActionNotCompleted, ActionNotFound
from scores.integrity import find_problems
from scores.models import Action, ScoreEvent

pytestmark = pytest.mark.django_db


def _completed(user) -> Action:
    action = services.start_action(user=user, action_type_code="quick")
    return services.complete_action(user=user, action_id=action.pk)


def test_void_appends_a_negative_ledger_row_and_lowers_the_total(alice, quick_type, django_capture_on_commit_callbacks):
    _completed(alice)
    action = _completed(alice)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.void_action(action_id=action.pk)

    assert len(callbacks) == 1  # the board/broadcast hook runs once the void is committed
    action.refresh_from_db()
    alice.refresh_from_db()
    assert action.status == "voided"
    assert action.points_awarded == 10  # what was paid stays on record
    assert alice.score == 10
    reversal = ScoreEvent.objects.get(action=action, reason="action_voided")
    assert (reversal.delta, reversal.resulting_total) == (-10, 10)
    assert ScoreEvent.objects.count() == 3  # nothing deleted
    assert find_problems() == []


def test_void_twice_or_void_an_unfinished_action_is_refused(alice, quick_type):
    action = _completed(alice)
    services.void_action(action_id=action.pk)
    with pytest.raises(ActionNotCompleted):
        services.void_action(action_id=action.pk)
    started = services.start_action(user=alice, action_type_code="quick")
    with pytest.raises(ActionNotCompleted):
        services.void_action(action_id=started.pk)
    with pytest.raises(ActionNotFound):
        services.void_action(action_id="not-a-uuid")
    alice.refresh_from_db()
    assert alice.score == 0


def test_voiding_moves_the_user_down_the_board(alice, bob, quick_type):
    _completed(bob)
    _completed(alice)
    action = _completed(alice)
    assert leaderboard.rank_of(alice) == 1
    services.void_action(action_id=action.pk)
    services.void_action(action_id=Action.objects.filter(user=alice, status="completed").get().pk)
    assert [entry.username for entry in leaderboard.top().entries] == ["bob", "alice"]
    assert leaderboard.top().entries[1].score == 0


def test_staff_void_from_the_admin(client, admin_user, alice, quick_type):
    action = _completed(alice)
    client.force_login(admin_user)
    response = client.post(
        "/admin/scores/action/", {"action": "void_selected", "_selected_action": [str(action.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert b"Voided 1 action(s)." in response.content
    alice.refresh_from_db()
    assert alice.score == 0
    action.refresh_from_db()
    assert action.status == "voided"


def test_admin_cannot_edit_or_delete_actions(client, admin_user, alice, quick_type):
    action = _completed(alice)
    client.force_login(admin_user)
    client.post(f"/admin/scores/action/{action.pk}/change/", {"points_awarded": 999, "status": "started"})
    client.post(f"/admin/scores/action/{action.pk}/delete/", {"post": "yes"})
    action.refresh_from_db()
    assert (action.status, action.points_awarded) == ("completed", 10)
