import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_the_documented_production_settings():
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DEBUG="0", SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="scoreboard.example.com",
               CSRF_TRUSTED_ORIGINS="https://scoreboard.example.com")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_the_development_secret_key():
    env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY"}}
    env.update(DEBUG="0")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def _check(**settings: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DEBUG="0", SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="scoreboard.example.com", **settings)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_production_refuses_a_short_or_empty_jwt_signing_key():
    for key in ("x", "short-key"):
        result = _check(JWT_SIGNING_KEY=key)
        assert result.returncode != 0 and "JWT_SIGNING_KEY" in result.stderr
    assert _check(JWT_SIGNING_KEY="").returncode == 0  # empty means unset: SECRET_KEY signs
    assert _check(JWT_SIGNING_KEY=secrets.token_urlsafe(60)).returncode == 0


def test_a_rate_limit_with_a_zero_count_or_period_is_refused():
    for rate in ("30/0m", "0/m", "00/5m"):
        result = _check(RATE_LIMIT_LOGIN=rate)
        assert result.returncode != 0 and "RATE_LIMIT_LOGIN" in result.stderr, rate
    assert _check(RATE_LIMIT_LOGIN="30/5m").returncode == 0


def test_a_malformed_network_or_log_setting_is_refused_by_name():
    for name, value in (("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network"),
                        ("METRICS_ALLOWED_NETWORKS", "10.0.0.1/8"),
                        ("LOG_LEVEL", "LOUD"), ("LOG_FORMAT", "xml"), ("LEADERBOARD_BACKEND", "memcached")):
        result = _check(**{name: value})
        assert result.returncode != 0, (name, value)
        assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr[-500:]
    assert _check(METRICS_ALLOWED_NETWORKS="10.0.0.0/8, 192.168.0.0/16", LOG_LEVEL="WARNING").returncode == 0


def test_a_malformed_database_or_redis_url_or_pool_size_is_refused_by_name():
    postgres = "postgres://127.0.0.1:5432/scoreboard"
    for settings, name in (({"DATABASE_URL": "foo"}, "DATABASE_URL"), ({"REDIS_URL": "foo"}, "REDIS_URL"),
                           ({"LEADERBOARD_REDIS_URL": "localhost:6379"}, "LEADERBOARD_REDIS_URL"),
                           ({"DATABASE_URL": postgres, "DB_POOL": "1", "DB_POOL_MIN": "30", "DB_POOL_MAX": "20"},
                            "DB_POOL_MAX"),
                           ({"DATABASE_URL": postgres, "DB_POOL": "1", "DB_POOL_MAX": "0"}, "DB_POOL_MAX")):
        result = _check(**settings)
        assert result.returncode != 0, settings
        assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr[-500:]
    assert _check(DATABASE_URL=postgres, DB_POOL="1", DB_POOL_MIN="30").returncode == 0  # the maximum follows
