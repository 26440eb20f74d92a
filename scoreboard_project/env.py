"""Reading the environment for settings.py: typed values that refuse a bad one at start-up (ImproperlyConfigured
names the variable), and the two settings built from URLs: the database and the Redis cache and channel layer."""

import ipaddress
import os
import re
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_networks(name: str, default: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated networks like 10.0.0.0/8 (no host bits set), got {item!r}"
            ) from None
    return networks


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = os.environ.get(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(sorted(choices))}, got {value!r}")
    return value


_RATE = re.compile(r"^[1-9]\d*/([1-9]\d*)?[smhd]$")  # a zero count or period would turn the limit off


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate such as `30/m` or `100/5m`."""
    value = os.environ.get(name, default).strip()
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name} must be a rate like 30/m, 10/s or 100/5m, got {value!r}")
    return value


def database_from_url(url: str) -> dict:
    """The default database from DATABASE_URL, with the DB_* knobs (README, Settings)."""
    database = environ.Env.db_url_config(url)
    if not database.get("ENGINE"):
        raise ImproperlyConfigured(f"DATABASE_URL must be a URL such as postgres://host:5432/name, got {url!r}")
    if database["ENGINE"] == "django.db.backends.postgresql":
        _tune_postgresql(database)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # Concurrent writers on the embedded default: a DEFERRED transaction that reads and then writes fails at once
        # with "database is locked" (500) when another holds the write lock; IMMEDIATE takes the lock up front and
        # waits up to `timeout` seconds for it instead. Found by the schemathesis run (issue 5).
        database.setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    return database


def _tune_postgresql(database: dict) -> None:
    # Django's backend with a connection health check that costs no round trip (scoreboard_project/postgresql).
    database["ENGINE"] = "scoreboard_project.postgresql"
    database["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
    # A reused connection is checked at the start of each request, so one that died with a database restart is
    # replaced instead of failing its next request with a 503. Stays on with DB_POOL, where the pool relies on it.
    database["CONN_HEALTH_CHECKS"] = env_bool("DB_CONN_HEALTH_CHECKS", True) or env_bool("DB_POOL", False)
    # A database that is down must fail a request fast (503 with Retry-After), not hang it (issue 7).
    database.setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 3, minimum=1)
    if env_bool("DB_SERVER_SIDE_BINDING", True):
        # Parameters bound by the server, so psycopg prepares a statement run DB_PREPARE_THRESHOLD times on one
        # connection: PostgreSQL stops re-planning the completion's statements (its CPU per completion fell by
        # 40%, bench/request_cpu.py). Off for a pooler that cannot keep prepared statements (PgBouncer < 1.21).
        database["OPTIONS"]["server_side_binding"] = True
        database["OPTIONS"]["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 5, minimum=1)
    if env_bool("DB_POOL", False):
        # Under ASGI persistent connections leak (one per thread); psycopg's pool is the safe way to reuse them.
        # With CONN_HEALTH_CHECKS Django has the pool check a connection before handing it out, so after a
        # database restart a dead one is replaced instead of failing a request; `timeout` bounds the wait for one.
        smallest = env_int("DB_POOL_MIN", 2)
        database["OPTIONS"]["pool"] = {
            "min_size": smallest, "max_size": env_int("DB_POOL_MAX", max(20, smallest), minimum=max(1, smallest)),
            "timeout": env_int("DB_POOL_TIMEOUT", 5, minimum=1),
        }
    if os.environ.get("TEST_DATABASE_NAME"):
        database["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}


_LAYER_BACKENDS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}


def redis_url(name: str) -> str:
    """A Redis URL setting (empty: unset); anything but redis://, rediss:// or unix:// is refused at start-up."""
    value = os.environ.get(name, "").strip()
    if value and urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name} must be a redis://, rediss:// or unix:// URL, got {value!r}")
    return value


def redis_cache_and_layers(url: str, timeout: float) -> tuple[dict, dict]:
    """CACHES and CHANNEL_LAYERS on the Redis at REDIS_URL; `timeout` (seconds) bounds connects and commands."""
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": os.environ.get("REDIS_KEY_PREFIX", "scoreboard"),
            "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
        }
    }
    # Pub/sub: measured with bench/fanout.py (5,000 viewers) its p99 was 25-45% lower than the core layer's. It
    # drops messages while a connection is down; the board relay repairs that from the database when idle
    # (LIVE_RESYNC_SECONDS). See the README's live-push section for the figures.
    layer = os.environ.get("CHANNEL_LAYER", "pubsub")
    db = urlsplit(url).path.strip("/") or "0"
    if layer not in _LAYER_BACKENDS:
        raise ImproperlyConfigured(f"CHANNEL_LAYER must be one of {sorted(_LAYER_BACKENDS)}, got {layer!r}")
    layers = {
        "default": {
            "BACKEND": _LAYER_BACKENDS[layer],
            "CONFIG": {
                # redis-py 8 defaults to a 5 s socket timeout, equal to the layer's blocking pop: idle
                # consumers would crash. No timeout, and a pool large enough for connect bursts.
                "hosts": [{"address": url, "socket_timeout": None, "max_connections": 1000,
                           "socket_connect_timeout": timeout}],
                # Redis pub/sub channels ignore the database number: put it in the prefix so that two deployments
                # (or test runs) on one Redis server with different databases never hear each other's broadcasts.
                "prefix": f"{os.environ.get('REDIS_KEY_PREFIX', 'scoreboard')}:{db}:asgi",
            },
        }
    }
    return caches, layers
