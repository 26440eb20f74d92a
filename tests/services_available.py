"""Exit 0 if the PostgreSQL at DATABASE_URL and the Redis at REDIS_URL answer, else 1 with the reason; and the
rule for a test whose service is missing: skip with the reason, except under CI=true, where it fails."""

import os
import sys

import environ
import psycopg
import redis


IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail_without(message: str) -> None:
    import pytest

    if IN_CI:
        pytest.fail(f"CI=true but this test {message}")
    pytest.skip(message)


def main() -> int:
    db = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    try:
        psycopg.connect(
            dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None,
            password=db["PASSWORD"] or None, connect_timeout=3,
        ).close()
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        print(f"PostgreSQL/Redis not reachable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
