import pytest

from scores import services

pytestmark = pytest.mark.django_db


def test_board_page_renders_top_ten_without_javascript(client, make_user, quick_type):
    player = make_user("<script>alert(1)</script>")
    action = services.start_action(user=player, action_type_code="quick")
    services.complete_action(user=player, action_id=action.pk)
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert 'aria-live="polite"' in page


def test_board_page_when_nobody_scored(client):
    assert "Nobody has scored yet." in client.get("/").content.decode()
