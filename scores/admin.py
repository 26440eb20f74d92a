from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scores import services
from scores.exceptions import ScoreboardError
from scores.models import Action, ActionType, MultiplierEvent, ScoreEvent, SuspicionFlag


@admin.register(ActionType)
class ActionTypeAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "points", "min_duration_seconds", "max_duration_seconds", "daily_cap", "is_active")
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
    actions = ["void_selected"]

    @admin.action(description="Void selected completed actions (reverse their points)")
    def void_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        voided = 0
        for action_id in queryset.values_list("pk", flat=True):
            try:
                action = services.void_action(action_id=action_id)
            except ScoreboardError as exc:
                self.message_user(request, f"{action_id}: {exc.message}", messages.WARNING)
                continue
            self.log_change(request, action, f"Voided; {action.points_awarded} points reversed.")
            voided += 1
        self.message_user(request, f"Voided {voided} action(s).", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The void action needs change permission on the list (obj is None). An action's own page stays view-only:
        # its Save would write back the row as read, undoing a completion or a void committed meanwhile.
        if obj is not None:
            return False
        return request.user.is_superuser or request.user.has_perm("scores.change_action")

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [field.name for field in Action._meta.fields]


@admin.register(ScoreEvent)
class ScoreEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "delta", "resulting_total", "reason", "action", "created_at")
    list_filter = ("reason",)
    search_fields = ("user__username",)
    list_select_related = ("user", "action")


@admin.register(MultiplierEvent)
class MultiplierEventAdmin(admin.ModelAdmin):
    list_display = ("action_type", "multiplier", "starts_at", "ends_at", "note")
    list_filter = ("action_type",)
    date_hierarchy = "starts_at"


@admin.register(SuspicionFlag)
class SuspicionFlagAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "reason", "resolved", "details")
    list_filter = ("reason", "resolved", "created_at")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    readonly_fields = ("user", "reason", "details", "created_at")
    actions = ["mark_resolved"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Mark selected flags resolved")
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(resolved=True)
        self.message_user(request, f"Resolved {count} flag(s).", messages.SUCCESS)
