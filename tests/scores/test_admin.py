import pytest

from scores import services
from scores.models import MultiplierEvent, ScoreEvent

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


def test_saving_a_user_read_before_a_payment_keeps_the_payment(alice, played):
    read_by_the_admin = type(alice).objects.get(pk=alice.pk)
    services.complete_action(user=alice, action_id=services.start_action(user=alice, action_type_code="quick").pk)
    read_by_the_admin.email = "alice@example.com"
    read_by_the_admin.save()  # what the admin's change form and password change do with the row they read
    alice.refresh_from_db()
    assert (alice.email, alice.score) == ("alice@example.com", 20)
    assert sum(ScoreEvent.objects.filter(user=alice).values_list("delta", flat=True)) == 20


def test_saving_a_user_read_before_a_ban_keeps_the_ban(alice):
    from accounts.services import ban_user

    read_by_the_admin = type(alice).objects.get(pk=alice.pk)
    ban_user(user_id=alice.pk)
    read_by_the_admin.first_name = "Alice"
    read_by_the_admin.save()
    alice.refresh_from_db()
    assert alice.is_banned and alice.banned_at is not None and alice.first_name == "Alice"


def test_admin_edits_of_a_user_and_their_password_still_save(client, admin_user, alice):
    client.force_login(admin_user)
    form = {"username": "alice", "email": "new@example.com", "is_active": "on",
            "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    assert client.post(f"/admin/accounts/user/{alice.pk}/change/", form).status_code == 302
    response = client.post(f"/admin/accounts/user/{alice.pk}/password/",
                           {"password1": "a-new-Passw0rd!", "password2": "a-new-Passw0rd!", "usable_password": "true"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email == "new@example.com" and alice.check_password("a-new-Passw0rd!")


def test_an_actions_admin_page_is_view_only(client, admin_user, played):
    client.force_login(admin_user)
    page = client.get(f"/admin/scores/action/{played.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = client.post(f"/admin/scores/action/{played.pk}/change/", {"status": "started", "points_awarded": 0})
    assert response.status_code == 403
    played.refresh_from_db()
    assert (played.status, played.points_awarded) == ("completed", 10)
    # The list's void action still works.
    client.post("/admin/scores/action/", {"action": "void_selected", "_selected_action": [str(played.pk)]})
    played.refresh_from_db()
    assert played.status == "voided"


def test_points_and_multipliers_are_bounded_so_every_payment_fits(client, admin_user, quick_type):
    client.force_login(admin_user)
    response = client.post(
        f"/admin/scores/actiontype/{quick_type.pk}/change/",
        {"code": "quick", "name": "Quick", "points": 2_000_000_000, "min_duration_seconds": 0,
         "max_duration_seconds": 60, "is_active": "on"},
    )
    assert response.status_code == 200 and "less than or equal to 1000000" in response.content.decode()
    response = client.post(
        "/admin/scores/multiplierevent/add/",
        {"action_type": quick_type.pk, "multiplier": "1000", "starts_at_0": "2026-01-01", "starts_at_1": "00:00:00",
         "ends_at_0": "2026-01-02", "ends_at_1": "00:00:00", "note": ""},
    )
    assert response.status_code == 200 and "less than or equal to 100" in response.content.decode()
    quick_type.refresh_from_db()
    assert quick_type.points == 10 and not MultiplierEvent.objects.exists()
