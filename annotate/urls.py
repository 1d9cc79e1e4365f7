from django.urls import path

from annotate import apis
from annotate.quality import apis as quality_apis

app_name = "annotate"
urlpatterns = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="token"),
    path("campaigns/", apis.CampaignListCreateApi.as_view(), name="campaigns"),
    path("campaigns/<id:campaign_id>/", apis.CampaignDetailApi.as_view(), name="campaign"),
    path("campaigns/<id:campaign_id>/prompts/", apis.PromptsAddApi.as_view(), name="prompts"),
    path("campaigns/<id:campaign_id>/images/", apis.ImagesImportApi.as_view(), name="images"),
    path("image-imports/<id:import_id>/", apis.ImageImportDetailApi.as_view(), name="image-import"),
    path("campaigns/<id:campaign_id>/members/", apis.MembersSetApi.as_view(), name="members"),
    path(
        "campaigns/<id:campaign_id>/comparisons/build/",
        apis.ComparisonsBuildApi.as_view(),
        name="comparisons-build",
    ),
    path("campaigns/<id:campaign_id>/next/", apis.AssignmentNextApi.as_view(), name="next"),
    path("assignments/<id:assignment_id>/submit/", apis.JudgmentSubmitApi.as_view(), name="submit"),
    path("assignments/<id:assignment_id>/skip/", apis.AssignmentSkipApi.as_view(), name="skip"),
    path("assignments/<id:assignment_id>/undo/", apis.JudgmentUndoApi.as_view(), name="undo"),
    # Quality: the report, and an admin's gate override for one rater.
    path(
        "campaigns/<id:campaign_id>/quality/",
        quality_apis.QualitySummaryApi.as_view(),
        name="quality",
    ),
    path(
        "campaigns/<id:campaign_id>/raters/<id:user_id>/gate/",
        quality_apis.RaterGateOverrideApi.as_view(),
        name="rater-gate",
    ),
]
