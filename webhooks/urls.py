from django.urls import path

from webhooks import apis

app_name = "webhooks"
urlpatterns = [
    path("webhooks/", apis.WebhookListCreateApi.as_view(), name="list"),
    path("webhooks/<id:webhook_id>/", apis.WebhookDetailApi.as_view(), name="detail"),
    path("webhooks/<id:webhook_id>/test/", apis.WebhookTestApi.as_view(), name="test"),
    path(
        "webhooks/<id:webhook_id>/deliveries/",
        apis.WebhookDeliveryListApi.as_view(),
        name="deliveries",
    ),
]
