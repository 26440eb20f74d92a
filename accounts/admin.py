from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from scores import leaderboard


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "score", "score_updated_at", "is_active", "is_staff")
    readonly_fields = ("score", "score_updated_at", "rank")
    fieldsets = DjangoUserAdmin.fieldsets + (("Score", {"fields": ("score", "score_updated_at", "rank")}),)
    ordering = ("-score", "username")

    @admin.display(description="Rank")
    def rank(self, user: User) -> int | str:
        return leaderboard.rank_of(user) or "—"
