import logging

import pytest


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


def test_metrics_refused_to_an_outside_client_behind_the_proxy(client, settings):
    # Behind nginx every request comes from loopback; the client is the address nginx appended.
    settings.TRUSTED_PROXY_COUNT = 1
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.9").status_code == 403
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_request_methods_outside_http_share_one_metric_label(client):
    for method in ("BREW", "XYZZYPLUGH"):
        client.generic(method, "/healthz")
    body = client.get("/metrics").content.decode()
    assert 'method="other",route="healthz"' in body
    assert "BREW" not in body and "XYZZYPLUGH" not in body


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


# --- The domain metrics, read from /metrics as a scraper sees them ------------------------------------------


def metric(client, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when the series does not exist yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return sample.value
    return 0.0


def start(client, code: str) -> str:
    response = client.post("/api/v1/users/me/actions", {"actionType": code}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["actionId"]


def test_completions_and_points_counted_by_action_type_once_committed(
    client, as_alice, quick_type, slow_type, django_capture_on_commit_callbacks
):
    before = (metric(client, "scoreboard_completions_total", action_type="quick"),
              metric(client, "scoreboard_points_awarded_total", action_type="quick"))
    with django_capture_on_commit_callbacks(execute=True):
        action_id = start(as_alice, "quick")
        done = as_alice.put(f"/api/v1/users/me/actions/{action_id}", {"status": "completed"}, format="json")
    assert done.status_code == 200
    # A refused completion (too fast) pays nothing and counts nothing.
    with django_capture_on_commit_callbacks(execute=True):
        slow_id = start(as_alice, "slow")
        assert as_alice.put(f"/api/v1/users/me/actions/{slow_id}", {"status": "completed"}, format="json").status_code == 422
    assert metric(client, "scoreboard_completions_total", action_type="quick") == before[0] + 1
    assert metric(client, "scoreboard_points_awarded_total", action_type="quick") == before[1] + 10
    assert metric(client, "scoreboard_completions_total", action_type="slow") == 0


def test_uncommitted_completion_is_not_counted(client, alice, quick_type):
    # Under Django's TestCase-style test the transaction never commits: on_commit never fires, so no count.
    from scores import services

    before = metric(client, "scoreboard_completions_total", action_type="quick")
    action = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=action.pk)
    assert metric(client, "scoreboard_completions_total", action_type="quick") == before


def test_rejected_requests_counted_by_reason(client, anon, as_alice, as_bob, alice, quick_type, slow_type, settings):
    reasons = ["auth", "too_fast", "conflict", "validation", "forbidden", "rate_limit"]
    before = {reason: metric(client, "scoreboard_rejected_requests_total", reason=reason) for reason in reasons}

    assert anon.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json").status_code == 401
    slow_id = start(as_alice, "slow")
    assert as_alice.put(f"/api/v1/users/me/actions/{slow_id}", {"status": "completed"}, format="json").status_code == 422
    quick_id = start(as_alice, "quick")
    assert as_alice.put(f"/api/v1/users/me/actions/{quick_id}", {"status": "completed"}, format="json").status_code == 200
    assert as_alice.put(f"/api/v1/users/me/actions/{quick_id}", {"status": "completed"}, format="json").status_code == 409
    assert as_alice.put(f"/api/v1/users/me/actions/{quick_id}", {"status": "paused"}, format="json").status_code == 400
    assert as_bob.put(f"/api/v1/users/{alice.pk}/actions/{quick_id}", {"status": "completed"},
                      format="json").status_code == 403
    settings.RATE_LIMIT_START_ACTION = "1/h"
    statuses = [as_bob.post("/api/v1/users/me/actions", {"actionType": "quick"}, format="json").status_code
                for _ in range(2)]
    assert statuses[-1] == 429

    after = {reason: metric(client, "scoreboard_rejected_requests_total", reason=reason) for reason in reasons}
    assert {reason: after[reason] - before[reason] for reason in reasons} == {
        "auth": 1, "too_fast": 1, "conflict": 1, "validation": 1, "forbidden": 1, "rate_limit": 1,
    }


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websocket_gauge_follows_open_sockets(alice):
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.test import Client
    from rest_framework_simplejwt.tokens import AccessToken

    from scoreboard_project.asgi import application

    read = sync_to_async(lambda: metric(Client(), "scoreboard_websocket_connections"))
    before = await read()
    communicator = WebsocketCommunicator(application, f"/ws/scoreboard?token={AccessToken.for_user(alice)}")
    connected, _ = await communicator.connect()
    assert connected
    assert await read() == before + 1
    refused = WebsocketCommunicator(application, "/ws/scoreboard")  # no credentials: refused, never counted open
    assert (await refused.connect())[0]  # opened only to say why (scores/consumers.py, _refuse)
    assert (await refused.receive_output(timeout=3))["type"] == "websocket.send"
    assert await refused.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    assert await read() == before + 1
    await communicator.disconnect()
    assert await read() == before


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_live_endpoint_refusals_counted_by_reason(alice):
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.test import AsyncClient, Client

    from scoreboard_project.asgi import application

    reasons = ("validation", "method_not_allowed")
    read = sync_to_async(lambda: {reason: metric(Client(), "scoreboard_rejected_requests_total", reason=reason)
                                  for reason in reasons})
    before = await read()
    assert (await AsyncClient().get("/api/v1/leaderboard/stream?period=decade")).status_code == 400
    assert (await AsyncClient().post("/api/v1/leaderboard/stream")).status_code == 405
    socket = WebsocketCommunicator(application, "/ws/scoreboard?period=decade")
    assert await socket.connect() == (False, 4400)
    after = await read()
    assert {reason: after[reason] - before[reason] for reason in reasons} == {"validation": 2, "method_not_allowed": 1}


@pytest.mark.django_db(transaction=True)
def test_rank_messages_and_board_broadcasts_counted(client, alice, quick_type, settings):
    import time

    from scores import broadcast, services

    settings.LIVE_COALESCE_MS = 20
    broadcast.reset()
    before = (metric(client, "scoreboard_rank_updates_total"), metric(client, "scoreboard_broadcasts_total"))
    action = services.start_action(user=alice, action_type_code="quick")
    services.complete_action(user=alice, action_id=action.pk)
    deadline = time.monotonic() + 5
    while metric(client, "scoreboard_rank_updates_total") == before[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(client, "scoreboard_rank_updates_total") == before[0] + 1  # alice's rank, to alice's sockets
    assert metric(client, "scoreboard_broadcasts_total") == before[1] + 1  # the board that shows her


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_leaderboard_cache_miss_rebuild_then_hit(client, settings):
    from scores.leaderboard import redis_rebuild

    if not settings.REDIS_URL:
        pytest.skip("needs Redis")  # the marker already fails this in CI
    settings.LEADERBOARD_BACKEND = "redis"
    counts = lambda: {result: metric(client, "scoreboard_leaderboard_cache_total", result=result)  # noqa: E731
                      for result in ("hit", "miss", "rebuild")}
    before = counts()
    assert client.get("/api/v1/leaderboard").status_code == 200  # no board in Redis yet: miss, rebuild started
    redis_rebuild.wait_for_background_rebuilds()
    assert client.get("/api/v1/leaderboard").status_code == 200
    after = counts()
    assert {result: after[result] - before[result] for result in after} == {"hit": 1, "miss": 1, "rebuild": 1}


def test_json_logs_never_carry_the_request_and_its_query_string(settings):
    from django.test import RequestFactory
    from pythonjsonlogger.json import JsonFormatter

    # The JSON formatter as LOG_FORMAT=json configures it (the "()" entry names the class).
    formatter = JsonFormatter(**{key: value for key, value in settings.LOGGING["formatters"]["json"].items() if key != "()"})
    record = logging.LogRecord("django.security.DisallowedHost", logging.ERROR, __file__, 1, "Invalid host", (), None)
    record.request = RequestFactory().get("/api/v1/leaderboard?token=secret-token-123")
    record.status_code = 400
    line = formatter.format(record)
    assert "secret-token-123" not in line and '"status_code": 400' in line
