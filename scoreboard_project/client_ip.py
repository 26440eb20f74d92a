"""The client's IP address, trusting X-Forwarded-For only as far as TRUSTED_PROXY_COUNT says.

With N trusted proxies each appending the address it received from, the client is the N-th entry from the right;
anything further left was written by the client and may be forged. With N = 0 the header is ignored.
"""

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client IP of an HTTP request (Django or DRF)."""
    return _pick(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def client_ip_from_scope(scope: dict) -> str | None:
    """The client IP of an ASGI connection (WebSocket or HTTP scope)."""
    peer = scope.get("client") or (None, None)
    return _pick(peer[0], _header(scope.get("headers", []), b"x-forwarded-for"))


def _pick(socket_address: str | None, forwarded_for: str) -> str | None:
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        if len(hops) >= trusted and _valid(hops[-trusted]):
            return hops[-trusted]
    return socket_address if _valid(socket_address) else None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    # Several X-Forwarded-For headers count as one comma-separated list, in order.
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return ",".join(values)


def _valid(address: str | None) -> bool:
    try:
        ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return True
