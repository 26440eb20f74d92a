"""The shared cast (alice, bob, an admin, a quick action type) and the service markers.

Tests marked `postgres` or `redis` run in the pass of `make test` that has those services. Outside CI they skip
with a message when the service is not configured; with CI=true they fail instead, so CI can never go green
without them.
"""

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from scores.models import ActionType
from tests.services_available import skip_or_fail_without


def _uses_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = []
    if item.get_closest_marker("postgres") and not _uses_postgres():
        missing.append("PostgreSQL (set DATABASE_URL=postgres://...)")
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        missing.append("Redis (set REDIS_URL=redis://...)")
    if missing:
        skip_or_fail_without(f"needs {' and '.join(missing)}")


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra) -> object:
        return django_user_model.objects.create_user(username=username, password="correct-horse-battery", **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "correct-horse-battery")


@pytest.fixture
def quick_type(db) -> ActionType:
    """Worth 10 points, completable at once, expires after an hour."""
    return ActionType.objects.create(code="quick", name="Quick", points=10, min_duration_seconds=0, max_duration_seconds=3600)


@pytest.fixture
def slow_type(db) -> ActionType:
    """Worth 50 points, completable only after 60 s."""
    return ActionType.objects.create(code="slow", name="Slow", points=50, min_duration_seconds=60, max_duration_seconds=600)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for():
    """An API client carrying a fresh access token for `user`."""

    def make(user: object) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
        return client

    return make


@pytest.fixture
def as_alice(client_for, alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def as_bob(client_for, bob) -> APIClient:
    return client_for(bob)


def _is_transactional(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("django_db")
    if marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return any(name in request.fixturenames for name in ("transactional_db", "live_server"))


@pytest.fixture(autouse=True)
def leaderboard_store(request: pytest.FixtureRequest, settings):
    """Each test starts with empty Redis boards and a process that has seen no Redis outage.

    Only transactional tests use the Redis board: Django's TestCase-style tests never commit, so the
    write-through (on_commit) never runs and a rebuild (on its own connection) would not see their rows. They
    read the database backend, which is exact for uncommitted rows too.
    """
    from scores import broadcast, leaderboard
    from scores.leaderboard import redis_rebuild

    leaderboard._health.reset()
    if settings.LEADERBOARD_BACKEND != "redis":
        yield
        return
    transactional = _is_transactional(request)
    if transactional:
        # Requested here so that this fixture's teardown (joining rebuild threads) runs before the flush.
        request.getfixturevalue("transactional_db")
    else:
        settings.LEADERBOARD_BACKEND = "database"
    url, prefix = settings.LEADERBOARD_REDIS_URL, settings.LEADERBOARD_KEY_PREFIX
    _clear_leaderboard_keys(url, prefix)
    yield
    broadcast._flusher.wait_idle(timeout=10)  # its flush reads the boards, which may start a rebuild
    redis_rebuild.wait_for_background_rebuilds()
    _clear_leaderboard_keys(url, prefix)
    leaderboard._health.reset()


def _clear_leaderboard_keys(url: str, prefix: str) -> None:
    # Only this project's leaderboard keys in the test Redis database: never FLUSHDB a shared server.
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _no_cached_multipliers():
    # A rolled-back test's multiplier events must not live on in the per-process cache (issue 7c).
    from scores.anticheat import forget_multipliers

    forget_multipliers()
    yield
    forget_multipliers()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness would dominate the suite; the hasher itself is Django's concern.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory) -> None:
    # Live push reads the board from its own thread. An in-memory SQLite test database (shared cache) fails a
    # concurrent writer at once with "table is locked"; a file database makes it wait, as `make run`'s does.
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters(settings) -> None:
    """Every test counts rate limits and live connections under its own key prefix (in LocMem or Redis alike),
    so one test's logins never throttle the next; old keys expire on their own."""
    import uuid

    run = uuid.uuid4().hex[:12]
    settings.RATELIMIT_CACHE_PREFIX = f"rl:{run}:"
    settings.CONNECTION_LIMIT_KEY_PREFIX = f"conn:{run}:"


@pytest.fixture
def make_api_client(db):
    """An ApiClient with the award scope; returns (client, raw key, signing secret or None)."""
    from integrations.models import ApiClient

    def make(name: str = "game-server", *, signed: bool = False, active: bool = True, scopes: list | None = None):
        client = ApiClient(name=name, is_active=active, scopes=[ApiClient.SCOPE_AWARD] if scopes is None else scopes)
        raw_key = client.set_new_key()
        secret = client.set_new_signing_secret() if signed else None
        client.save()
        return client, raw_key, secret

    return make
