from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import User
from scores import leaderboard


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "score", "score_updated_at", "is_banned", "is_active", "is_staff")
    list_filter = DjangoUserAdmin.list_filter + ("is_banned",)
    readonly_fields = ("score", "score_updated_at", "rank", "is_banned", "banned_at")
    fieldsets = DjangoUserAdmin.fieldsets + (
        ("Score", {"fields": ("score", "score_updated_at", "rank")}),
        ("Ban", {"fields": ("is_banned", "banned_at")}),
    )
    ordering = ("-score", "username")
    actions = ["ban_selected", "unban_selected"]

    @admin.action(description="Ban selected users (403 on every request, off the boards)")
    def ban_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user_id in queryset.exclude(pk=request.user.pk).values_list("pk", flat=True):
            self.log_change(request, services.ban_user(user_id=user_id), "Banned.")
        self.message_user(request, "Banned the selected users (never yourself).", messages.SUCCESS)

    @admin.action(description="Unban selected users")
    def unban_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user_id in queryset.values_list("pk", flat=True):
            self.log_change(request, services.unban_user(user_id=user_id), "Unbanned.")
        self.message_user(request, "Unbanned the selected users.", messages.SUCCESS)

    @admin.display(description="Rank")
    def rank(self, user: User) -> int | str:
        return leaderboard.rank_of(user) or "—"
