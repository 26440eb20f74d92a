"""/metrics over two real daphne processes sharing one PROMETHEUS_MULTIPROC_DIR (prometheus-client multi-process
mode), PostgreSQL and Redis: whichever process answers the scrape reports the sum of both, as a scraper sees it.
"""

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scores import broadcast
from tests.live_servers import Daphne, daphne_pair, live_env
from tests.scores.test_broadcast_e2e import SseViewer, WsViewer, complete_over_http

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
]


@pytest.fixture
def servers(django_db_setup, django_db_blocker, tmp_path):
    # DB_POOL: the production ASGI configuration (deploy/stack.py).
    env = live_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), DB_POOL="true", LIVE_COALESCE_MS="50")
    with daphne_pair(env) as pair:
        yield pair


@pytest.fixture(autouse=True)
def fresh_broadcast_state():
    broadcast.reset()
    yield
    broadcast.reset()


async def scrape(server: Daphne) -> dict[tuple, float]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


LEADERBOARD_COUNT = ("scoreboard_http_request_duration_seconds_count",
                     {"route": "api/v1/leaderboard", "method": "GET", "status": "200"})


async def test_two_processes_counters_and_gauges_add_up(servers, alice, bob, quick_type):
    a, b = servers
    before = await scrape(a)
    async with httpx.AsyncClient(timeout=10) as client:
        for server, times in ((a, 3), (b, 2)):
            for _ in range(times):
                assert (await client.get(f"{server.url}/api/v1/leaderboard")).status_code == 200
    await complete_over_http(a, alice)
    await complete_over_http(b, alice)
    ws, sse = WsViewer(), SseViewer()
    await ws.open(a, bob)
    await sse.open(b, bob)
    await asyncio.sleep(0.5)  # the coalesced broadcast goes out after its window

    for scraped_from in (a, b):  # either process reports both
        after = await scrape(scraped_from)
        name, labels = LEADERBOARD_COUNT
        assert value(after, name, **labels) - value(before, name, **labels) == 5
        assert value(after, "scoreboard_completions_total", action_type="quick") - value(
            before, "scoreboard_completions_total", action_type="quick") == 2
        assert value(after, "scoreboard_points_awarded_total", action_type="quick") - value(
            before, "scoreboard_points_awarded_total", action_type="quick") == 20
        assert value(after, "scoreboard_websocket_connections") == 1
        assert value(after, "scoreboard_sse_connections") == 1
        assert value(after, "scoreboard_broadcasts_total") > value(before, "scoreboard_broadcasts_total")
        assert value(after, "scoreboard_broadcast_lag_seconds_count") > 0
        assert value(after, "scoreboard_leaderboard_cache_total", result="hit") > 0

    await ws.close()
    await sse.close()
    for _ in range(50):
        after = await scrape(b)
        if value(after, "scoreboard_websocket_connections") == value(after, "scoreboard_sse_connections") == 0:
            break
        await asyncio.sleep(0.1)
    assert value(after, "scoreboard_websocket_connections") == 0
    assert value(after, "scoreboard_sse_connections") == 0
