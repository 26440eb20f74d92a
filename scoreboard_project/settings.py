"""Scoreboard settings: one module, every knob read from the environment.

With nothing set it runs on the embedded default (SQLite, in-memory channel layer, local-memory cache).
DATABASE_URL and REDIS_URL switch it to PostgreSQL and Redis. Every variable is listed in the README.
"""

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

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


_RATE = re.compile(r"^\d+/\d*[smhd]$")


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate such as `30/m` or `100/5m`."""
    value = os.environ.get(name, default).strip()
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name} must be a rate like 30/m, 10/s or 100/5m, got {value!r}")
    return value


DEBUG = env_bool("DEBUG", True)

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-never-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", _DEV_SECRET_KEY)
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("Set SECRET_KEY to a random string of at least 50 characters when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "scores",
    "integrations",
]

MIDDLEWARE = [
    "scoreboard_project.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from daphne or any server; with DEBUG on it reads the app folders directly (no collectstatic).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "scoreboard_project.urls"
WSGI_APPLICATION = "scoreboard_project.wsgi.application"
ASGI_APPLICATION = "scoreboard_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a connection health check that costs no round trip (scoreboard_project/postgresql).
    DATABASES["default"]["ENGINE"] = "scoreboard_project.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
    # A reused connection is checked at the start of each request, so one that died with a database restart is
    # replaced instead of failing its next request with a 503. Stays on with DB_POOL, where the pool relies on it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DB_CONN_HEALTH_CHECKS", True) or env_bool("DB_POOL", False)
    # A database that is down must fail a request fast (503 with Retry-After), not hang it (issue 7).
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 3, minimum=1)
    if env_bool("DB_SERVER_SIDE_BINDING", True):
        # Parameters bound by the server, so psycopg prepares a statement run DB_PREPARE_THRESHOLD times on one
        # connection: PostgreSQL stops re-planning the completion's statements (its CPU per completion fell by
        # 40%, bench/request_cpu.py). Off for a pooler that cannot keep prepared statements (PgBouncer < 1.21).
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = env_int("DB_PREPARE_THRESHOLD", 5, minimum=1)
    if env_bool("DB_POOL", False):
        # Under ASGI persistent connections leak (one per thread); psycopg's pool is the safe way to reuse them.
        # With CONN_HEALTH_CHECKS Django has the pool check a connection before handing it out, so after a
        # database restart a dead one is replaced instead of failing a request; `timeout` bounds the wait for one.
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env_int("DB_POOL_MIN", 2), "max_size": env_int("DB_POOL_MAX", 20),
            "timeout": env_int("DB_POOL_TIMEOUT", 5, minimum=1),
        }
    if os.environ.get("TEST_DATABASE_NAME"):
        DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers on the embedded default: a DEFERRED transaction that reads and then writes fails at once
    # with "database is locked" (500) when another holds the write lock; IMMEDIATE takes the lock up front and
    # waits up to `timeout` seconds for it instead. Found by the schemathesis run (issue 5).
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Redis: cache and channel layer -----------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
# Connect and command timeout of the cache (rate-limit and connection counters) and the channel layer's connect:
# an unreachable Redis fails a request within this, never hangs it.
REDIS_TIMEOUT_SECONDS = env_int("REDIS_TIMEOUT_MS", 1000, minimum=1) / 1000

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("REDIS_KEY_PREFIX", "scoreboard"),
            "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS},
        }
    }
    # Pub/sub: measured with bench/fanout.py (5,000 viewers) its p99 was 25-45% lower than the core layer's. It
    # drops messages while a connection is down; the board relay repairs that from the database when idle
    # (LIVE_RESYNC_SECONDS). See the README's live-push section for the figures.
    CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "pubsub")
    _REDIS_DB = urlsplit(REDIS_URL).path.strip("/") or "0"
    _LAYER_BACKENDS = {
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }
    if CHANNEL_LAYER not in _LAYER_BACKENDS:
        raise ImproperlyConfigured(f"CHANNEL_LAYER must be one of {sorted(_LAYER_BACKENDS)}, got {CHANNEL_LAYER!r}")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _LAYER_BACKENDS[CHANNEL_LAYER],
            "CONFIG": {
                # redis-py 8 defaults to a 5 s socket timeout, equal to the layer's blocking pop: idle
                # consumers would crash. No timeout, and a pool large enough for connect bursts.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 1000,
                           "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}],
                # Redis pub/sub channels ignore the database number: put it in the prefix so that two deployments
                # (or test runs) on one Redis server with different databases never hear each other's broadcasts.
                "prefix": f"{os.environ.get('REDIS_KEY_PREFIX', 'scoreboard')}:{_REDIS_DB}:asgi",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Leaderboard store (issue 3) ----------------------------------------------------------------------

# "database" (SQL on the source of truth) or "redis" (sorted sets, rebuilt from the database when missing).
LEADERBOARD_BACKEND = os.environ.get("LEADERBOARD_BACKEND", "redis" if REDIS_URL else "database")
if LEADERBOARD_BACKEND not in {"database", "redis"}:
    raise ImproperlyConfigured(f"LEADERBOARD_BACKEND must be 'database' or 'redis', got {LEADERBOARD_BACKEND!r}")
LEADERBOARD_REDIS_URL = os.environ.get("LEADERBOARD_REDIS_URL", REDIS_URL)
if LEADERBOARD_BACKEND == "redis" and not LEADERBOARD_REDIS_URL:
    raise ImproperlyConfigured("LEADERBOARD_BACKEND=redis needs LEADERBOARD_REDIS_URL or REDIS_URL.")
LEADERBOARD_KEY_PREFIX = os.environ.get("LEADERBOARD_KEY_PREFIX", os.environ.get("REDIS_KEY_PREFIX", "scoreboard") + ":lb")
# A request never waits longer than this on the leaderboard's Redis; after a failure it is left alone this long.
LEADERBOARD_REDIS_TIMEOUT_MS = env_int("LEADERBOARD_REDIS_TIMEOUT_MS", 250, minimum=1)
LEADERBOARD_REDIS_RETRY_SECONDS = env_int("LEADERBOARD_REDIS_RETRY_SECONDS", 2)

# --- Abuse resistance (issue 5): rate limits, connection limits, anti-cheat ----------------------------

# Rate-limit counters: Redis when REDIS_URL is set, so limits hold across processes. The embedded default is one
# daphne process, where a local-memory cache is shared by every request and its incr is atomic under a lock
# (Django's DatabaseCache is not atomic either, and would add a SQLite write to every limited request).
# django_ratelimit is deliberately not in INSTALLED_APPS: its system check rejects both of these caches
# (and warns about Django's own RedisCache, which works); scoreboard_project/ratelimits.py calls its core directly.
CACHES["ratelimit"] = (
    {**CACHES["default"], "KEY_PREFIX": os.environ.get("REDIS_KEY_PREFIX", "scoreboard") + ":rl"}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
)
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_ENABLE = env_bool("RATE_LIMITS_ENABLED", True)
# Fail open: when the counter store is unreachable, requests pass (and a warning is logged) rather than the whole
# game going down with Redis. Limits are a shield against floods, not what keeps scores honest: the server-side
# checks in scores.services hold either way. Set RATE_LIMIT_FAIL_OPEN=0 to refuse with 503 instead.
RATELIMIT_FAIL_OPEN = env_bool("RATE_LIMIT_FAIL_OPEN", True)
RATE_LIMIT_START_ACTION = env_rate("RATE_LIMIT_START_ACTION", "30/m")
RATE_LIMIT_COMPLETE_ACTION = env_rate("RATE_LIMIT_COMPLETE_ACTION", "30/m")
RATE_LIMIT_LOGIN = env_rate("RATE_LIMIT_LOGIN", "10/m")
RATE_LIMIT_REGISTER = env_rate("RATE_LIMIT_REGISTER", "10/m")
RATE_LIMIT_API_CLIENT = env_rate("RATE_LIMIT_API_CLIENT", "600/m")

# How many reverse proxies in front of the app append to X-Forwarded-For. 0: the header is ignored and the
# socket address is the client, so a client cannot pick its own IP to dodge per-IP limits.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

MAX_OPEN_ACTIONS_PER_USER = env_int("MAX_OPEN_ACTIONS_PER_USER", 3, minimum=1)
MAX_CONNECTIONS_PER_USER = env_int("MAX_CONNECTIONS_PER_USER", 5, minimum=1)
MAX_CONNECTIONS_PER_IP = env_int("MAX_CONNECTIONS_PER_IP", 50, minimum=1)
# A connection count left behind by a crashed process expires after this long.
CONNECTION_COUNT_TTL_SECONDS = env_int("CONNECTION_COUNT_TTL_SECONDS", 3600, minimum=60)

# Flag a user whose points within the window exceed the threshold (0 disables), or who completes actions within
# the margin of the minimum duration this many times in a row (0 disables).
SUSPICION_WINDOW_SECONDS = env_int("SUSPICION_WINDOW_SECONDS", 3600, minimum=1)
SUSPICION_WINDOW_POINTS = env_int("SUSPICION_WINDOW_POINTS", 1000)
SUSPICION_MIN_DURATION_STREAK = env_int("SUSPICION_MIN_DURATION_STREAK", 5)
SUSPICION_MIN_DURATION_MARGIN_SECONDS = env_int("SUSPICION_MIN_DURATION_MARGIN_SECONDS", 1)
# Issue 7c: how long a process reuses an action type's multiplier events (0: ask the database every completion).
MULTIPLIER_CACHE_MS = env_int("MULTIPLIER_CACHE_MS", 1000)

# Trusted game servers: signed requests may be this far from the server clock; idempotency keys are kept this
# long (at least the promised 24 h); a request still in flight after the timeout is presumed dead and retried.
API_SIGNATURE_MAX_SKEW_SECONDS = env_int("API_SIGNATURE_MAX_SKEW_SECONDS", 300, minimum=1)
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24, minimum=24)
IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS = env_int("IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECONDS", 60, minimum=1)

# --- API ---------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # JWT first: its WWW-Authenticate header makes DRF answer 401 (not 403) to anonymous callers.
        "accounts.authentication.JWTAuthentication",
        "accounts.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["scoreboard_project.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "scoreboard_project.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Scoreboard API",
    "DESCRIPTION": "A live top-10 scoreboard. Every error has the shape {error: {code, message, details}}.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

ACCESS_TOKEN_LIFETIME_SECONDS = env_int("ACCESS_TOKEN_LIFETIME_SECONDS", 600, minimum=1)
REFRESH_TOKEN_LIFETIME_SECONDS = env_int("REFRESH_TOKEN_LIFETIME_SECONDS", 7 * 24 * 3600, minimum=1)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=ACCESS_TOKEN_LIFETIME_SECONDS),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=REFRESH_TOKEN_LIFETIME_SECONDS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", SECRET_KEY),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# --- Live push (WebSocket /ws/scoreboard and SSE /api/v1/leaderboard/stream) ----------------------------

LIVE_ALLOW_ANONYMOUS = env_bool("LIVE_ALLOW_ANONYMOUS", False)
LIVE_COALESCE_MS = env_int("LIVE_COALESCE_MS", 100)
LIVE_MAX_FRAME_BYTES = env_int("LIVE_MAX_FRAME_BYTES", 4096, minimum=64)
LIVE_SSE_KEEPALIVE_SECONDS = env_int("LIVE_SSE_KEEPALIVE_SECONDS", 15, minimum=1)
LIVE_SSE_RETRY_MS = env_int("LIVE_SSE_RETRY_MS", 3000, minimum=100)
LIVE_RESYNC_SECONDS = env_int("LIVE_RESYNC_SECONDS", 30, minimum=1)
# How often each server process re-reads the ranks of its signed-in WebSocket viewers (one batched read), so a
# viewer passed by other players hears their new rank without a change of their own.
LIVE_RANK_REFRESH_SECONDS = env_int("LIVE_RANK_REFRESH_SECONDS", 5, minimum=1)
# The GIL switch interval of WSGI worker processes (scoreboard_project/wsgi.py); Python's default is 5 ms.
WSGI_SWITCH_INTERVAL_MS = env_int("WSGI_SWITCH_INTERVAL_MS", 1, minimum=1)
LIVE_REDIS_PREFIX = os.environ.get("REDIS_KEY_PREFIX", "scoreboard") + ":live"

ACTION_METADATA_MAX_BYTES = env_int("ACTION_METADATA_MAX_BYTES", 2048, minimum=2)
ACTION_METADATA_MAX_DEPTH = env_int("ACTION_METADATA_MAX_DEPTH", 5, minimum=1)
# Request bodies above this are refused with 413 before parsing (API bodies are a few hundred bytes).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 256 * 1024, minimum=1024)
LEADERBOARD_MAX_LIMIT = 100

# --- Static files, i18n, security -------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # With DEBUG off, `collectstatic` writes hashed, compressed copies that WhiteNoise serves with far-future caching.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# A file missing from the manifest (collectstatic not run) gets its plain URL instead of turning pages into 500s.
WHITENOISE_MANIFEST_STRICT = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers and Prometheus probe over plain HTTP inside the network: never redirect the probes.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if env_bool("TRUST_X_FORWARDED_PROTO", False):
        # Only behind a TLS-terminating proxy that overwrites this header; otherwise clients could forge it.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Observability ----------------------------------------------------------------------------------

METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(network) for network in env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
]

LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Our request log replaces Django's, which would repeat each failed request with its query string.
    "loggers": {"django.request": {"level": "ERROR"}},
}
