import pytest

from integrations.models import ApiClient
from tests.integrations.award import post

pytestmark = pytest.mark.django_db


def test_admin_shows_the_key_once_and_stores_only_its_hash(client, admin_user, alice, quick_type):
    client.force_login(admin_user)
    response = client.post(
        "/admin/integrations/apiclient/add/",
        {"name": "arcade", "scopes": '["scores:award"]', "is_active": "on"},
        follow=True,
    )
    text = response.content.decode()
    raw_key = text.split("it is not shown again): ")[1].split("<")[0].strip()
    stored = ApiClient.objects.get(name="arcade")
    assert raw_key.startswith("sbk_") and raw_key not in stored.key_hash
    assert raw_key not in client.get(f"/admin/integrations/apiclient/{stored.pk}/change/").content.decode()
    assert post(raw_key, {"userId": str(alice.pk), "actionType": "quick"}).status_code == 200



@pytest.mark.parametrize("scopes", ['"scores:award"', '{"scores:award": true}', '["scores:award", 5]'])
def test_admin_refuses_scopes_that_are_not_a_list_of_strings(client, admin_user, scopes):
    client.force_login(admin_user)
    response = client.post("/admin/integrations/apiclient/add/", {"name": "arcade", "scopes": scopes, "is_active": "on"})
    assert response.status_code == 200  # the form again, with the error
    assert "Scopes must be a list of strings" in response.content.decode()
    assert not ApiClient.objects.exists()
