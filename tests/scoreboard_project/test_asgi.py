"""The ASGI entry point itself: what reaches a client before Django's handler is involved."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator

from scoreboard_project.asgi import application

pytestmark = pytest.mark.asyncio


async def get(path: str, query_string: bytes) -> tuple[int, dict, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query_string, "root_path": "",
             "headers": [(b"host", b"localhost")], "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=5)
    body = await communicator.receive_output(timeout=5)
    await communicator.wait(timeout=5)
    return start["status"], dict(start["headers"]), body["body"]


async def test_a_query_string_that_is_not_utf8_is_a_json_400():
    status, headers, body = await get("/api/v1/leaderboard", b"period=\xff")  # a raw byte, not %FF
    assert status == 400
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body)["error"]["code"] == "malformed_request"


async def test_a_percent_encoded_utf8_query_string_goes_through():
    status, _, body = await get("/healthz", b"x=%C3%A9")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
