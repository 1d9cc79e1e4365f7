from django.contrib import admin, messages

from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import webhook_test_send


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("id", "url", "campaign", "events", "is_active", "created_at")
    list_filter = ("is_active",)
    readonly_fields = ("secret", "judgments_after", "created_by", "created_at")
    actions = ["send_test_event"]

    @admin.action(description="Send a test event")
    def send_test_event(self, request, queryset):
        for webhook in queryset:
            webhook_test_send(webhook=webhook)
        self.message_user(
            request, f"Test events queued for {queryset.count()} endpoint(s).", messages.SUCCESS
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "webhook",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
    )
    list_filter = ("status", "event")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False
