"""Django admin for generator specs and generation jobs; writes go through the services.

Generator forms run the model's clean(), so a missing folder or an unknown scheduler is a form
error. Generation starts from the generator list (an action asking for the campaign).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from annotate.access import campaign_get_for_user
from annotate.models import Campaign, Membership
from generation.models import (
    MAX_JOB_SEED,
    MAX_SEEDS_PER_PROMPT,
    GenerationItem,
    GenerationJob,
    Generator,
)
from generation.selectors import generation_job_progress
from generation.services.jobs import (
    generation_job_cancel,
    generation_job_enqueue,
    generation_job_start,
)
from generation.services.recovery import generation_items_recover
from pickwise.errors import ApplicationError
from pickwise.text_input import STORABLE_FORMFIELDS

NOT_CAMPAIGN_ADMIN = "You are not an admin of campaign {campaign}."


class StartGenerationForm(forms.Form):
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.exclude(status=Campaign.Status.CLOSED).order_by("slug")
    )
    seeds_per_prompt = forms.IntegerField(min_value=1, max_value=MAX_SEEDS_PER_PROMPT, initial=2)
    seed = forms.IntegerField(min_value=0, max_value=MAX_JOB_SEED, initial=0)
    gold = forms.IntegerField(
        min_value=0, required=False, help_text="Gold items wanted; blank: max(15, 2%)."
    )


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    formfield_overrides = STORABLE_FORMFIELDS
    list_display = ("name", "source", "scheduler", "steps", "guidance", "width", "height", "dtype")
    search_fields = ("name", "source")
    actions = ["start_generation"]

    @admin.action(description="Generate images for a campaign with the selected generators")
    def start_generation(self, request, queryset):
        form = StartGenerationForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            campaign = form.cleaned_data["campaign"]
            try:
                campaign_get_for_user(
                    user=request.user, campaign_id=campaign.pk, roles=(Membership.Role.ADMIN,)
                )
                job = generation_job_start(
                    campaign=campaign,
                    generators=list(queryset),
                    seeds_per_prompt=form.cleaned_data["seeds_per_prompt"],
                    seed=form.cleaned_data["seed"],
                    gold_count=form.cleaned_data["gold"],
                    created_by=request.user,
                )
            except (PermissionDenied, Http404):
                self.message_user(
                    request, NOT_CAMPAIGN_ADMIN.format(campaign=campaign.slug), messages.ERROR
                )
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                url = reverse("admin:generation_generationjob_change", args=[job.pk])
                self.message_user(
                    request,
                    format_html('Started <a href="{}">generation job {}</a>.', url, job.pk),
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Generate images",
            "opts": self.model._meta,
            "form": form,
            "generators": queryset,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/generation/start_generation.html", context)


class GenerationItemInline(admin.TabularInline):
    model = GenerationItem
    fields = ("prompt", "generator", "index", "seed", "status", "attempts", "image", "error")
    readonly_fields = fields
    can_delete = False
    extra = 0
    max_num = 0
    show_change_link = True

    def get_queryset(self, request):
        # Only the failures: a job has thousands of items, the list view filters the rest.
        return super().get_queryset(request).filter(status=GenerationItem.Status.FAILED)


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "status", "seeds_per_prompt", "progress", "created_at")
    list_filter = ("status",)
    search_fields = ("campaign__slug",)
    readonly_fields = (
        "campaign",
        "generators",
        "seeds_per_prompt",
        "seed",
        "gold_count",
        "status",
        "progress",
        "comparisons_created",
        "gold_created",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    inlines = [GenerationItemInline]
    actions = ["cancel", "resume"]

    def has_add_permission(self, request):
        return False  # jobs start from the generator list, the API or the command

    @admin.display(description="images done / failed / total")
    def progress(self, job):
        counts = generation_job_progress(job=job)
        return f"{counts['done']} / {counts['failed']} / {counts['total']}"

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        for job in queryset:
            try:
                generation_job_cancel(job=job)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.WARNING)

    @admin.action(description="Give back stale claims and re-send the pending items")
    def resume(self, request, queryset):
        counts = generation_items_recover()
        sent = sum(generation_job_enqueue(job_id=job.pk) for job in queryset)
        self.message_user(
            request,
            f"{counts['released']} stale items given back, "
            f"{counts['batches_sent'] + sent} batches sent.",
        )


@admin.register(GenerationItem)
class GenerationItemAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "prompt", "generator", "seed", "status", "attempts")
    list_filter = ("status", "generator")
    raw_id_fields = ("job", "prompt", "image")
    readonly_fields = (
        "job",
        "prompt",
        "generator",
        "index",
        "seed",
        "status",
        "attempts",
        "claim_token",
        "worker",
        "heartbeat_at",
        "image",
        "error",
        "finished_at",
    )

    def has_add_permission(self, request):
        return False
