from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from django.views.generic import TemplateView
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView

from pickwise.converters import ObjectIdConverter
from pickwise.login_throttle import ThrottledAdminAuthenticationForm

# Before the apps' URL modules are included: they use <id:...>.
register_converter(ObjectIdConverter, "id")

admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from the vendored, pinned copy with a static init script: works offline and
    # under the pages' Content-Security-Policy (drf-spectacular's page loads a CDN and inlines JS).
    path(
        "api/docs/",
        TemplateView.as_view(template_name="frontend/api_docs.html"),
        name="api-docs",
    ),
    path("api/", include("annotate.urls")),
    path("api/", include("generation.urls")),
    path("api/", include("exports.urls")),
    path("api/", include("training.urls")),
    path("api/", include("webhooks.urls")),
    path("", include("frontend.urls")),
]

if settings.PICKWISE_SERVE_MEDIA:
    # Embedded default: Django serves media. In production a web server or S3 does.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
