from django.urls import path

from integrations import api

urlpatterns = [
    path("scores", api.AwardScoreView.as_view(), name="award-score"),
]
