from django.urls import path

from generation import apis

app_name = "generation"
urlpatterns = [
    path("generators/", apis.GeneratorListApi.as_view(), name="generators"),
    path("campaigns/<id:campaign_id>/generate/", apis.GenerationJobsApi.as_view(), name="generate"),
    path("generation-jobs/<id:job_id>/", apis.GenerationJobDetailApi.as_view(), name="job"),
    path(
        "generation-jobs/<id:job_id>/cancel/",
        apis.GenerationJobCancelApi.as_view(),
        name="job-cancel",
    ),
]
