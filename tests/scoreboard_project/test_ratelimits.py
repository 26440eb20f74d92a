import socket

import pytest
from django.core.cache import caches
from django_ratelimit.core import get_usage

from accounts.models import User
from scores.models import Action

pytestmark = pytest.mark.django_db


def _start(client, code: str = "quick"):
    return client.post("/api/v1/users/me/actions", {"actionType": code}, format="json")


def _assert_limited(response) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    body = response.json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["retryAfterSeconds"] == int(response["Retry-After"])


def test_starting_is_limited_per_user_with_429_and_nothing_stored(settings, as_alice, as_bob, quick_type):
    settings.RATE_LIMIT_START_ACTION = "2/h"
    assert [_start(as_alice).status_code for _ in range(2)] == [201, 201]

    _assert_limited(_start(as_alice))
    assert Action.objects.count() == 2
    assert _start(as_bob).status_code == 201  # per user: bob has his own allowance


def test_completing_is_limited_per_user(settings, as_alice, alice, quick_type):
    settings.RATE_LIMIT_COMPLETE_ACTION = "1/h"
    first, second = (_start(as_alice).json()["actionId"] for _ in range(2))
    assert as_alice.put(f"/api/v1/users/me/actions/{first}", {"status": "completed"}, format="json").status_code == 200

    _assert_limited(as_alice.put(f"/api/v1/users/me/actions/{second}", {"status": "completed"}, format="json"))
    alice.refresh_from_db()
    assert alice.score == 10
    assert Action.objects.get(pk=second).status == "started"


def test_login_is_limited_per_ip_even_with_the_right_password(settings, anon, alice):
    settings.RATE_LIMIT_LOGIN = "3/h"
    credentials = {"username": "alice", "password": "correct-horse-battery"}
    assert [anon.post("/api/v1/auth/login", credentials, format="json").status_code for _ in range(3)] == [200] * 3
    _assert_limited(anon.post("/api/v1/auth/login", credentials, format="json"))


def test_register_is_limited_per_ip_and_creates_nobody(settings, anon):
    settings.RATE_LIMIT_REGISTER = "1/h"
    body = {"username": "newcomer", "password": "a-long-unusual-passphrase"}
    assert anon.post("/api/v1/auth/register", body, format="json").status_code == 201

    _assert_limited(anon.post("/api/v1/auth/register", {**body, "username": "second"}, format="json"))
    assert not User.objects.filter(username="second").exists()


def test_limits_can_be_switched_off(settings, anon, alice):
    settings.RATE_LIMIT_LOGIN = "1/h"
    settings.RATELIMIT_ENABLE = False
    credentials = {"username": "alice", "password": "correct-horse-battery"}
    assert {anon.post("/api/v1/auth/login", credentials, format="json").status_code for _ in range(3)} == {200}


def _dead_redis_url() -> str:
    with socket.socket() as probe:  # a free loopback port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{probe.getsockname()[1]}/0"


def _counters_on_dead_redis(settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _dead_redis_url()},
    }


def test_unreachable_counter_store_fails_open_by_default(settings, as_alice, quick_type):
    _counters_on_dead_redis(settings)
    assert _start(as_alice).status_code == 201


def test_unreachable_counter_store_fails_closed_when_configured(settings, as_alice, quick_type):
    _counters_on_dead_redis(settings)
    settings.RATELIMIT_FAIL_OPEN = False
    response = _start(as_alice)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rate_limit_unavailable"
    assert Action.objects.count() == 0


@pytest.mark.redis
def test_counts_live_in_redis_where_every_process_sees_them(settings, as_alice, alice, quick_type):
    from django.core.cache.backends.redis import RedisCache

    settings.RATE_LIMIT_START_ACTION = "5/h"
    assert isinstance(caches["ratelimit"], RedisCache)
    for _ in range(2):
        _start(as_alice)

    # A second cache alias has its own client and connection pool, as another server process would.
    settings.CACHES = {**settings.CACHES, "another_process": dict(settings.CACHES["ratelimit"])}
    settings.RATELIMIT_USE_CACHE = "another_process"

    class _Request:
        method = "POST"

    usage = get_usage(_Request(), group="actions.start", key=lambda *_: f"user:{alice.pk}", rate="5/h")
    assert usage["count"] == 2
