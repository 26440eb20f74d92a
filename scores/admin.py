from django.contrib import admin
from django.http import HttpRequest

from scores.models import Action, ActionType, ScoreEvent


@admin.register(ActionType)
class ActionTypeAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "points", "min_duration_seconds", "max_duration_seconds", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "name")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by scores.services: staff may look, never edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "action_type", "status", "started_at", "completed_at", "points_awarded")
    list_filter = ("status", "action_type", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "id")
    list_select_related = ("user", "action_type")
    date_hierarchy = "started_at"


@admin.register(ScoreEvent)
class ScoreEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "delta", "resulting_total", "reason", "action", "created_at")
    list_filter = ("reason",)
    search_fields = ("user__username",)
    list_select_related = ("user", "action")
