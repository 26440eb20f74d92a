from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as account_views
from scoreboard_project import errors, health, openapi  # noqa: F401 - openapi registers the schema's view annotations
from scoreboard_project.metrics import metrics_view
from scores import views

urlpatterns = [
    path("", views.board, name="board"),
    path("play", views.play, name="play"),
    path("login", account_views.SignInView.as_view(), name="login"),
    path("register", account_views.register, name="register"),
    path("logout", account_views.SignOutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include("accounts.urls")),
    path("api/v1/", include("scores.urls")),
    path("api/v1/", include("integrations.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # JSON 404 for any other API path, also while DEBUG shows HTML debug pages elsewhere.
    re_path(r"^api/", errors.api_not_found),
]

handler400 = "scoreboard_project.errors.bad_request"
handler404 = "scoreboard_project.errors.page_not_found"
handler500 = "scoreboard_project.errors.server_error"
