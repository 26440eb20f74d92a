import pytest

from accounts.models import User

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


def test_schema_states_the_rules_the_api_enforces(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    register = schema["components"]["schemas"]["RegisterRequest"]["properties"]
    assert register["username"]["pattern"] == r"^[\w.@+-]+$"
    assert register["password"]["minLength"] == 8  # Django's MinimumLengthValidator, as configured
    idempotency_key = next(param for param in schema["paths"]["/api/v1/scores"]["post"]["parameters"]
                           if param["name"] == "Idempotency-Key")
    assert idempotency_key["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}


def test_a_short_password_is_refused_by_the_length_the_schema_states(anon):
    response = anon.post("/api/v1/auth/register", {"username": "shorty", "password": "abc123x"},
                         content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["password"]
    assert not User.objects.filter(username="shorty").exists()


def test_docs_page_is_served_without_a_cdn(anon):
    response = anon.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page
