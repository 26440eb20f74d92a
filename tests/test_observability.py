import json
import logging

import pytest

from scores import services

pytestmark = pytest.mark.django_db


def test_metrics_served_to_loopback_with_request_latency(client, anon):
    anon.get("/api/v1/leaderboard")
    response = client.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'scoreboard_http_request_duration_seconds_count{method="GET",route="api/v1/leaderboard",status="200"}' in body


def test_metrics_refused_from_outside_without_token(client, settings):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_metrics_token_required_when_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token").status_code == 200


def test_request_id_echoed_or_minted(anon):
    given = anon.get("/api/v1/leaderboard", HTTP_X_REQUEST_ID="abc-123")
    assert given["X-Request-ID"] == "abc-123"
    minted = anon.get("/api/v1/leaderboard", HTTP_X_REQUEST_ID="<bad id>")
    assert len(minted["X-Request-ID"]) == 32


def test_request_log_never_contains_query_string(anon, caplog):
    with caplog.at_level(logging.INFO, logger="scoreboard.request"):
        anon.get("/api/v1/leaderboard?token=super-secret-jwt")
    lines = [record for record in caplog.records if record.name == "scoreboard.request"]
    assert len(lines) == 1
    assert "super-secret-jwt" not in lines[0].getMessage()
    assert lines[0].path == "/api/v1/leaderboard" and lines[0].status == 200 and lines[0].request_id
