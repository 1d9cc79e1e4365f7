"""Django admin for training jobs: read-only rows; cancel and evaluate go through the services."""

from django.contrib import admin, messages

from pickwise.errors import ApplicationError
from training.models import TrainingJob
from training.services.evaluation import evaluation_campaign_create
from training.services.jobs import training_job_cancel


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "export", "method", "mode", "status", "step", "max_steps")
    list_filter = ("status", "method", "mode")
    search_fields = ("name", "pretrained")
    actions = ["cancel", "evaluate"]
    readonly_fields = [f.name for f in TrainingJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # jobs start through the API or manage.py train_dpo, which check input

    @admin.action(description="Cancel the selected training jobs")
    def cancel(self, request, queryset):
        for job in queryset:
            try:
                training_job_cancel(job=job)
            except ApplicationError as error:
                self.message_user(request, f"Job {job.pk}: {error.message}", messages.WARNING)

    @admin.action(description="Create evaluation campaigns (base vs tuned) for finished jobs")
    def evaluate(self, request, queryset):
        for job in queryset:
            try:
                campaign = evaluation_campaign_create(job=job, by=request.user)
            except ApplicationError as error:
                self.message_user(request, f"Job {job.pk}: {error.message}", messages.WARNING)
            else:
                self.message_user(request, f"Job {job.pk}: evaluation campaign {campaign.slug}")
