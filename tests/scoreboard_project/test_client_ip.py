import pytest
from django.test import RequestFactory

from scoreboard_project.client_ip import client_ip, client_ip_from_scope


def _request(forwarded: str | None = None, remote: str = "10.0.0.9"):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_header_ignored_without_trusted_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(_request("6.6.6.6")) == "10.0.0.9"


def test_one_trusted_proxy_takes_the_address_it_appended(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # The client wrote "6.6.6.6"; the proxy appended the address it really saw.
    assert client_ip(_request("6.6.6.6, 203.0.113.7")) == "203.0.113.7"


def test_two_trusted_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(_request("6.6.6.6, 203.0.113.7, 10.1.1.1")) == "203.0.113.7"


@pytest.mark.parametrize("forwarded", ["", "not-an-ip", "203.0.113.7"])
def test_too_short_or_garbage_header_falls_back_to_the_socket(settings, forwarded):
    settings.TRUSTED_PROXY_COUNT = 2 if forwarded == "203.0.113.7" else 1
    assert client_ip(_request(forwarded)) == "10.0.0.9"


def test_asgi_scope(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    scope = {"client": ("10.0.0.9", 5555), "headers": [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.4")]}
    assert client_ip_from_scope(scope) == "198.51.100.4"
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip_from_scope(scope) == "10.0.0.9"
    assert client_ip_from_scope({"headers": []}) is None
