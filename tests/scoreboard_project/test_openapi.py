import pytest

pytestmark = pytest.mark.django_db


def test_schema_describes_every_api_operation(anon):
    response = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/auth/register", "post"), ("/api/v1/auth/login", "post"), ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"), ("/api/v1/users/me", "get"), ("/api/v1/action-types", "get"),
        ("/api/v1/users/{user_id}/actions", "post"), ("/api/v1/users/{user_id}/actions/{action_id}", "put"),
        ("/api/v1/leaderboard", "get"), ("/api/v1/scores", "post"),
    ]:
        operation = paths[path][method]
        assert "200" in operation["responses"] or "201" in operation["responses"] or "204" in operation["responses"]
    award = paths["/api/v1/scores"]["post"]
    assert {"Idempotency-Key", "X-Timestamp", "X-Signature"} <= {param["name"] for param in award["parameters"]}
    assert award["security"] == [{"apiKeyAuth": []}]
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]


def test_docs_page_is_served_without_a_cdn(anon):
    response = anon.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page
