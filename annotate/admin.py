"""Django admin for the annotation data. Writes that carry rules go through services."""

from django import forms
from django.contrib import admin, messages

from annotate.models import (
    Assignment,
    Campaign,
    Comparison,
    ComparisonImage,
    Image,
    Judgment,
    Membership,
    Prompt,
)
from annotate.services.campaigns import membership_set
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.gold import gold_top_up
from annotate.services.prompts import MAX_PROMPT_BYTES
from pickwise.text_input import STORABLE_FORMFIELDS, text_validate


class PromptAdminForm(forms.ModelForm):
    class Meta:
        model = Prompt
        fields = ["campaign", "text", "negative_prompt", "meta"]

    def clean_text(self):
        # In the unique (campaign, text) index: a byte limit as for every other way in.
        text = self.cleaned_data["text"]
        text_validate(text, field="The text", max_bytes=MAX_PROMPT_BYTES)
        return text


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_FORMFIELDS
    list_display = ("slug", "title", "kind", "k", "overlap", "status", "created_at")
    list_filter = ("kind", "status")
    search_fields = ("slug", "title")
    actions = ["build_comparisons", "build_gold"]

    @admin.action(description="Build comparisons from the campaign's images")
    def build_comparisons(self, request, queryset):
        for campaign in queryset:
            created = comparisons_build_for_campaign(campaign=campaign)
            self.message_user(request, f"{campaign.slug}: {created} comparisons created.")

    @admin.action(description="Make gold items (2%% of the comparisons, 15 to a quarter of them)")
    def build_gold(self, request, queryset):
        for campaign in queryset:
            made = gold_top_up(campaign=campaign)
            level = messages.SUCCESS if made else messages.WARNING
            self.message_user(request, f"{campaign.slug}: {made} gold items made.", level)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_FORMFIELDS
    list_display = ("user", "campaign", "role", "gate_state", "gate_changed_at")
    list_filter = ("role", "gate_state", "campaign")
    search_fields = ("user__username", "campaign__slug")
    readonly_fields = ("rater_key", "issued", "gate_changed_at")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new membership goes through the service, which draws its pseudonymous rater_key.
        saved = membership_set(
            campaign=obj.campaign, user=obj.user, role=obj.role, gate_state=obj.gate_state
        )
        if obj.gate_reason:
            saved.gate_reason = obj.gate_reason
            saved.save(update_fields=["gate_reason"])
        obj.pk = saved.pk
        obj.rater_key = saved.rater_key
        obj.gate_changed_at = saved.gate_changed_at
        obj.created_at = saved.created_at


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_FORMFIELDS
    form = PromptAdminForm
    list_display = ("id", "campaign", "text")
    list_filter = ("campaign",)
    search_fields = ("text",)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_FORMFIELDS
    list_display = ("uid", "prompt", "model_name", "seed", "source", "width", "height")
    list_filter = ("source", "model_name")
    search_fields = ("uid", "sha256", "prompt__text")
    readonly_fields = ("uid", "sha256", "width", "height", "file")
    raw_id_fields = ("prompt", "derived_from", "generator")


class ComparisonImageInline(admin.TabularInline):
    model = ComparisonImage
    extra = 0
    raw_id_fields = ("image",)
    readonly_fields = ("slot",)


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_FORMFIELDS
    list_display = ("id", "campaign", "role", "gold_kind", "wanted", "done", "in_flight", "status")
    list_filter = ("role", "status", "campaign")
    inlines = [ComparisonImageInline]
    raw_id_fields = ("prompt",)
    # Counters are kept by the assignment engine; editing them by hand breaks invariants.
    readonly_fields = ("done", "in_flight", "key")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "annotator", "state", "is_gold", "is_repeat", "expires_at")
    list_filter = ("state", "is_gold", "is_repeat", "campaign")
    raw_id_fields = ("comparison", "annotator", "repeat_of")
    readonly_fields = ("presented", "issued_at", "sequence")


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "campaign",
        "annotator",
        "is_gold",
        "gold_correct",
        "never_shown",
        "excluded",
        "created_at",
    )
    list_filter = ("is_gold", "is_repeat", "never_shown", "excluded", "campaign")
    raw_id_fields = ("assignment", "comparison", "annotator")
    readonly_fields = (
        "answers",
        "presented",
        "duration_ms",
        "server_ms",
        "never_shown",
        "created_at",
    )
