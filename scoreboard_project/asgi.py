"""ASGI entry point: HTTP through Django, WebSockets through Channels.

The Origin check lives in the consumer rather than AllowedHostsOriginValidator: the stock validator refuses any
socket without an Origin header, and token clients (games, scripts) send none. Cookie sessions, the thing the
Origin check protects, still require an allowed Origin (scores/consumers.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scoreboard_project.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs the app registry loaded above
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from scores import routing  # noqa: E402
from scores.frames import DirectFrames  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": DirectFrames(AuthMiddlewareStack(URLRouter(routing.websocket_urlpatterns))),
    }
)
