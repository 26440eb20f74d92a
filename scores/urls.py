from django.urls import path

from scores import api, stream

urlpatterns = [
    path("action-types", api.ActionTypeListView.as_view(), name="action-types"),
    path("users/<str:user_id>/actions", api.UserActionsView.as_view(), name="user-actions"),
    path("users/<str:user_id>/actions/<str:action_id>", api.UserActionView.as_view(), name="user-action"),
    path("leaderboard", api.LeaderboardView.as_view(), name="leaderboard"),
    path("leaderboard/stream", stream.leaderboard_stream, name="leaderboard-stream"),
]
