from django.contrib import admin

from notifications.models import Device


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "platform", "name", "created_at", "last_seen_at"]
    list_filter = ["platform"]
    search_fields = ["user__username", "name"]
    raw_id_fields = ["user"]
    # The token and its sign-in are set by the app, never typed by a person.
    readonly_fields = ["token", "auth_token", "created_at", "last_seen_at"]
