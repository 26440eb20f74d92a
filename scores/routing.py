from django.urls import path, re_path

from scores import consumers

websocket_urlpatterns = [
    path("ws/scoreboard", consumers.LeaderboardConsumer.as_asgi()),
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
