"""Scoreboard settings: one module, every knob read from the environment (parsed by scoreboard_project/env.py).

With nothing set it runs on the embedded default (SQLite, in-memory channel layer, local-memory cache).
DATABASE_URL and REDIS_URL switch it to PostgreSQL and Redis. Every variable is listed in the README.
"""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from scoreboard_project.env import (
    database_from_url, env_bool, env_choice, env_int, env_list, env_networks, env_rate, redis_cache_and_layers,
    redis_url,
)
from scoreboard_project.logging_config import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

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
DATABASES = {"default": database_from_url(DATABASE_URL)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Redis: cache and channel layer -----------------------------------------------------------------

REDIS_URL = redis_url("REDIS_URL")
# Connect and command timeout of the cache (rate-limit and connection counters) and the channel layer's connect:
# an unreachable Redis fails a request within this, never hangs it.
REDIS_TIMEOUT_SECONDS = env_int("REDIS_TIMEOUT_MS", 1000, minimum=1) / 1000

if REDIS_URL:
    CACHES, CHANNEL_LAYERS = redis_cache_and_layers(REDIS_URL, REDIS_TIMEOUT_SECONDS)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Leaderboard store (issue 3) ----------------------------------------------------------------------

# "database" (SQL on the source of truth) or "redis" (sorted sets, rebuilt from the database when missing).
LEADERBOARD_BACKEND = env_choice("LEADERBOARD_BACKEND", "redis" if REDIS_URL else "database", {"database", "redis"})
LEADERBOARD_REDIS_URL = redis_url("LEADERBOARD_REDIS_URL") or REDIS_URL
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
# A connection count nobody refreshes expires after this long (the last resort: see the heartbeat).
CONNECTION_COUNT_TTL_SECONDS = env_int("CONNECTION_COUNT_TTL_SECONDS", 3600, minimum=60)
# With Redis, a server's share of the counts lapses this long after its last heartbeat (a crashed server's
# connections are freed within it); see scores/connection_counts.py.
CONNECTION_HEARTBEAT_SECONDS = env_int("CONNECTION_HEARTBEAT_SECONDS", 30, minimum=1)
CONNECTION_LIMIT_KEY_PREFIX = "conn:"

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

JWT_SIGNING_KEY = os.environ.get("JWT_SIGNING_KEY") or SECRET_KEY
if not DEBUG and len(JWT_SIGNING_KEY) < 50:
    raise ImproperlyConfigured("JWT_SIGNING_KEY, when set, must be a random string of at least 50 characters.")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=ACCESS_TOKEN_LIFETIME_SECONDS),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=REFRESH_TOKEN_LIFETIME_SECONDS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
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
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

LOG_FORMAT = env_choice("LOG_FORMAT", "text", {"text", "json"})
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
