from django.contrib import admin, messages
from django.http import HttpRequest

from integrations.models import ApiClient, IdempotencyRecord


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "key_hint", "scopes", "is_active", "requires_signature", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    readonly_fields = ("key_hint", "created_at", "last_used_at")
    fields = ("name", "scopes", "is_active", "key_hint", "created_at", "last_used_at")
    actions = ["rotate_key", "require_signature", "drop_signature"]

    def get_form(self, request: HttpRequest, obj: ApiClient | None = None, **kwargs: object) -> type:
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form.base_fields["scopes"].initial = [ApiClient.SCOPE_AWARD]
        return form

    def save_model(self, request: HttpRequest, obj: ApiClient, form: object, change: bool) -> None:
        raw_key = None if change else obj.set_new_key()
        super().save_model(request, obj, form, change)
        if raw_key:
            # Shown this once: only the hash is stored, so a lost key means rotating to a new one.
            self.message_user(request, f"API key for {obj.name} (copy it now, it is not shown again): {raw_key}",
                              messages.WARNING)

    @admin.action(description="Rotate the key (the old key stops working at once)")
    def rotate_key(self, request: HttpRequest, queryset: object) -> None:
        for client in queryset:
            raw_key = client.set_new_key()
            client.save(update_fields=["key_hash", "key_hint"])
            self.message_user(request, f"New API key for {client.name} (shown once): {raw_key}", messages.WARNING)

    @admin.action(description="Require signed requests (a new HMAC secret, shown once)")
    def require_signature(self, request: HttpRequest, queryset: object) -> None:
        for client in queryset:
            secret = client.set_new_signing_secret()
            client.save(update_fields=["signing_secret"])
            self.message_user(request, f"Signing secret for {client.name} (shown once): {secret}", messages.WARNING)

    @admin.action(description="Stop requiring signed requests")
    def drop_signature(self, request: HttpRequest, queryset: object) -> None:
        queryset.update(signing_secret="")
        self.message_user(request, "Signatures no longer required for the selected clients.", messages.SUCCESS)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("created_at", "client", "key", "status", "response_status")
    list_filter = ("status", "client")
    search_fields = ("key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
