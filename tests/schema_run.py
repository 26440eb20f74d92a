"""The schemathesis run of `make test`: fuzz every operation of the OpenAPI schema against a real daphne server.

Not a pytest module (schemathesis registers a pytest plugin, so it lives in its own venv, .venv-schema). It serves
a fresh embedded-default database on a free loopback port, authenticates as a player (Bearer) and as a game server
(X-API-Key), and fails when any generated request gets a 500 or a response that breaks the schema.

    python -m tests.schema_run --schemathesis .venv-schema/bin/schemathesis [--max-examples N]

SCHEMATHESIS_EXTRA adds options to the schemathesis run, e.g. "--report har --report-dir /tmp/har
--include-path-regex register" to keep every request and response of one operation.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from deploy.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"

SETUP = """
from rest_framework_simplejwt.tokens import RefreshToken
from accounts.models import User
from integrations.models import ApiClient
from scores.models import ActionType
ActionType.objects.create(code="quick", name="Quick", points=10, min_duration_seconds=0, max_duration_seconds=3600)
ActionType.objects.create(code="slow", name="Slow", points=50, min_duration_seconds=60, max_duration_seconds=600)
user = User.objects.create_user("fuzzer", password="fuzzer-passphrase-123")
client = ApiClient(name="fuzz-server", scopes=["scores:award"])
key = client.set_new_key()
client.save()
print("SETUP" + __import__("json").dumps(
    {"token": str(RefreshToken.for_user(user).access_token), "key": key, "userId": str(user.pk)}
))
"""

# The game-server endpoint only pays a player who exists for an action type that exists, which random UUIDs and
# strings never name: most of its bodies draw both from these dictionaries, the rest stay random.
CONFIG = """
[dictionaries.players]
values = ["{user_id}"]

[dictionaries.action-types]
values = ["quick", "slow"]

[[operations]]
include-name = "POST /api/v1/scores"
[operations.parameters]
"body.userId" = {{ dictionary = "players", probability = 0.8 }}
"body.actionType" = {{ dictionary = "action-types", probability = 0.8 }}
"""


def _wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not answer {url} within {seconds} s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schemathesis", required=True)
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMA_MAX_EXAMPLES", "50")))
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="schema-run-") as tmp:
        env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
        # Limits off so the fuzzer reaches the handlers (429 is still in the schema); everything else as shipped.
        env.update(DATABASE_URL=f"sqlite:///{tmp}/schema.sqlite3", RATE_LIMITS_ENABLED="0", DEBUG="1",
                   MAX_OPEN_ACTIONS_PER_USER="1000", LOG_LEVEL="WARNING")
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        setup = subprocess.run([python, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
                               capture_output=True, text=True).stdout
        credentials = json.loads(setup.split("SETUP", 1)[1])
        Path(f"{tmp}/schemathesis.toml").write_text(CONFIG.format(user_id=credentials["userId"]))
        port = free_port()
        server = subprocess.Popen(
            [str(Path(python).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "scoreboard_project.asgi:application"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/server.log", "w"),
        )
        try:
            _wait_for(f"http://127.0.0.1:{port}/api/schema/")
            command = [
                str(Path(args.schemathesis).resolve()), "run", f"http://127.0.0.1:{port}/api/schema/",
                "--checks", CHECKS, "--max-examples", str(args.max_examples), "--seed", "20261122",
                "--phases", "examples,coverage,fuzzing", "--workers", "2", "--no-color",
                "--generation-database", "none", *os.environ.get("SCHEMATHESIS_EXTRA", "").split(),
                "-H", f"Authorization: Bearer {credentials['token']}", "-H", f"X-API-Key: {credentials['key']}",
            ]
            result = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        output = result.stdout + result.stderr
        print(output[-6000:])
        cases = re.search(r"(\d+) generated", output)
        print(f"schemathesis: exit {result.returncode}; generated test cases: {cases.group(1) if cases else '?'}")
        if result.returncode != 0:
            print(Path(f"{tmp}/server.log").read_text()[-4000:])
        return result.returncode


if __name__ == "__main__":
    sys.exit(main())
