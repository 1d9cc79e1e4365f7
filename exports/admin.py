from django.contrib import admin

from exports.models import Export


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """Read-only: exports are made through the API or the command and never edited."""

    list_display = ("id", "campaign", "format", "version", "status", "created_at")
    list_filter = ("format", "status")
    search_fields = ("campaign__slug",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
