from django.urls import path

from exports import apis

app_name = "exports"
urlpatterns = [
    path("exports/", apis.ExportCreateApi.as_view(), name="create"),
    path("exports/<id:export_id>/", apis.ExportDetailApi.as_view(), name="detail"),
    path("exports/<id:export_id>/files/<path:name>", apis.ExportFileApi.as_view(), name="file"),
]
