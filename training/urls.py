from django.urls import path

from training import apis

app_name = "training"
urlpatterns = [
    path("training-jobs/", apis.TrainingJobStartApi.as_view(), name="jobs"),
    path("training-jobs/<id:job_id>/", apis.TrainingJobDetailApi.as_view(), name="job"),
    path("training-jobs/<id:job_id>/cancel/", apis.TrainingJobCancelApi.as_view(), name="cancel"),
    path(
        "training-jobs/<id:job_id>/evaluate/",
        apis.TrainingJobEvaluateApi.as_view(),
        name="evaluate",
    ),
]
