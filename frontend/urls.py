from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import (
    campaign_views,
    export_views,
    image_views,
    member_views,
    prompt_views,
    training_views,
    views,
)
from pickwise.login_throttle import ThrottledAuthenticationForm

app_name = "frontend"
urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="frontend/login.html",
            redirect_authenticated_user=True,
            authentication_form=ThrottledAuthenticationForm,
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("campaigns/new/", campaign_views.campaign_new, name="campaign-new"),
    path(
        "campaigns/instructions-preview/",
        campaign_views.instructions_preview,
        name="instructions-preview",
    ),
    path("campaigns/<id:campaign_id>/", views.campaign_detail, name="campaign"),
    path(
        "campaigns/<id:campaign_id>/settings/",
        campaign_views.campaign_settings,
        name="campaign-settings",
    ),
    path("campaigns/<id:campaign_id>/prompts/", prompt_views.prompts, name="campaign-prompts"),
    path(
        "campaigns/<id:campaign_id>/prompts/paste/",
        prompt_views.prompts_paste,
        name="campaign-prompts-paste",
    ),
    path(
        "campaigns/<id:campaign_id>/prompts/upload/",
        prompt_views.prompts_upload,
        name="campaign-prompts-upload",
    ),
    path("campaigns/<id:campaign_id>/images/", image_views.images, name="campaign-images"),
    path(
        "campaigns/<id:campaign_id>/images/jobs/",
        image_views.images_jobs,
        name="campaign-images-jobs",
    ),
    path(
        "campaigns/<id:campaign_id>/images/generate/",
        image_views.images_generate,
        name="campaign-images-generate",
    ),
    path(
        "campaigns/<id:campaign_id>/images/import/",
        image_views.images_import,
        name="campaign-images-import",
    ),
    path("campaigns/<id:campaign_id>/exports/", export_views.exports, name="campaign-exports"),
    path(
        "campaigns/<id:campaign_id>/exports/list/",
        export_views.exports_list,
        name="campaign-exports-list",
    ),
    path(
        "campaigns/<id:campaign_id>/exports/start/",
        export_views.exports_start,
        name="campaign-exports-start",
    ),
    path("campaigns/<id:campaign_id>/members/", member_views.members, name="campaign-members"),
    path(
        "campaigns/<id:campaign_id>/members/add/",
        member_views.members_add_view,
        name="campaign-members-add",
    ),
    path(
        "campaigns/<id:campaign_id>/members/accounts/",
        member_views.accounts_create,
        name="campaign-accounts-create",
    ),
    path(
        "campaigns/<id:campaign_id>/members/<id:user_id>/role/",
        member_views.member_role,
        name="campaign-member-role",
    ),
    path(
        "campaigns/<id:campaign_id>/members/<id:user_id>/remove/",
        member_views.member_remove,
        name="campaign-member-remove",
    ),
    path(
        "campaigns/<id:campaign_id>/status/",
        campaign_views.campaign_status,
        name="campaign-status",
    ),
    path("campaigns/<id:campaign_id>/annotate/", views.annotate, name="annotate"),
    path(
        "campaigns/<id:campaign_id>/annotate/status/",
        views.annotate_status,
        name="annotate-status",
    ),
    path("campaigns/<id:campaign_id>/dashboard/", views.dashboard, name="dashboard"),
    path(
        "campaigns/<id:campaign_id>/dashboard/progress/",
        views.dashboard_progress,
        name="dashboard-progress",
    ),
    path(
        "campaigns/<id:campaign_id>/dashboard/jobs/",
        views.dashboard_jobs,
        name="dashboard-jobs",
    ),
    path(
        "campaigns/<id:campaign_id>/raters/<id:user_id>/gate/",
        views.rater_gate,
        name="rater-gate",
    ),
    path("exports/<id:export_id>/train/", training_views.training_start, name="training-start"),
    path("training-jobs/<id:job_id>/", training_views.training_job_detail, name="training-job"),
    path(
        "training-jobs/<id:job_id>/status/",
        training_views.training_job_status,
        name="training-job-status",
    ),
    path(
        "training-jobs/<id:job_id>/cancel/",
        training_views.training_job_cancel_view,
        name="training-job-cancel",
    ),
    path(
        "training-jobs/<id:job_id>/evaluation/",
        training_views.training_job_evaluation_card,
        name="training-job-evaluation",
    ),
    path(
        "training-jobs/<id:job_id>/evaluate/estimate/",
        training_views.training_job_evaluation_estimate,
        name="training-job-evaluation-estimate",
    ),
    path(
        "training-jobs/<id:job_id>/evaluate/",
        training_views.training_job_evaluate_view,
        name="training-job-evaluate",
    ),
]
