import pytest

from scores import services
from scores.models import ScoreEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def played(alice, quick_type):
    action = services.start_action(user=alice, action_type_code="quick")
    return services.complete_action(user=alice, action_id=action.pk)


def test_staff_sees_every_list(client, admin_user, played):
    client.force_login(admin_user)
    for url in ("/admin/accounts/user/", "/admin/scores/actiontype/", "/admin/scores/action/?status=completed",
                "/admin/scores/scoreevent/"):
        assert client.get(url).status_code == 200, url


def test_user_page_shows_score_and_rank_read_only(client, admin_user, alice, played):
    client.force_login(admin_user)
    page = client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert 'name="score"' not in page and "Rank" in page
    client.post(f"/admin/accounts/user/{alice.pk}/change/", {"username": "alice", "score": 999_999})
    alice.refresh_from_db()
    assert alice.score == 10


def test_ledger_and_actions_cannot_be_edited(client, admin_user, played):
    client.force_login(admin_user)
    event = ScoreEvent.objects.get()
    assert client.get("/admin/scores/scoreevent/add/").status_code == 403
    assert client.post(f"/admin/scores/scoreevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"/admin/scores/action/{played.pk}/delete/").status_code == 403
    assert ScoreEvent.objects.count() == 1


def test_staff_edits_action_type_points(client, admin_user, quick_type):
    client.force_login(admin_user)
    response = client.post(
        f"/admin/scores/actiontype/{quick_type.pk}/change/",
        {"code": "quick", "name": "Quick", "points": 25, "min_duration_seconds": 0, "max_duration_seconds": 60,
         "is_active": "on"},
    )
    assert response.status_code == 302
    quick_type.refresh_from_db()
    assert quick_type.points == 25


def test_non_staff_cannot_enter_admin(client, alice):
    client.force_login(alice)
    assert client.get("/admin/scores/scoreevent/").status_code == 302
