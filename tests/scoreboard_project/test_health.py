"""The probes: /healthz says the process is alive, /readyz names each dependency and its state."""

import pytest


def test_healthz_needs_nothing_but_the_process(anon):
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_names_database_redis_and_channel_layer(anon):
    response = anon.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "channelLayer"}
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] in {"ok", "disabled"}
    assert body["checks"]["channelLayer"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_is_degraded_with_503_when_the_channel_layer_redis_is_down(anon, settings):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{dead_port}/0"}]},
        }
    }
    response = anon.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["channelLayer"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "ok"
    # Unauthenticated: the failure is named, the address it failed on is not.
    assert body["checks"]["channelLayer"]["error"] == "ConnectionError"
    assert str(dead_port) not in response.content.decode()


def test_probes_refuse_other_methods(anon):
    assert anon.post("/healthz").status_code == 405
