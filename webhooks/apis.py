"""The webhooks REST API: add, list and remove endpoints, send a test event, read the log.

Campaign admins manage their campaign's endpoints; staff manage site-wide ones. The secret
is in the answer to the create request only.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import MANAGERS, campaign_get_for_user
from annotate.apis import ERRORS
from webhooks.access import site_webhooks_authorise, webhook_get_for_user
from webhooks.models import EVENTS, Webhook, WebhookDelivery
from webhooks.services import webhook_create, webhook_delete, webhook_test_send

DELIVERIES_SHOWN = 100


class WebhookOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "campaign", "is_active", "created_at"]


class DeliveryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
        ]


class WebhookListCreateApi(APIView):
    """GET lists a campaign's endpoints (?campaign=ID) or the site-wide ones; POST adds one."""

    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=2000)
        events = serializers.ListField(
            child=serializers.ChoiceField(choices=EVENTS),
            max_length=len(EVENTS),
            required=False,
            default=list,
            help_text="Events to send; empty for all.",
        )
        campaign = serializers.IntegerField(
            min_value=1, required=False, allow_null=True, help_text="Empty for site-wide."
        )

    class CreatedSerializer(WebhookOutputSerializer):
        class Meta(WebhookOutputSerializer.Meta):
            fields = [*WebhookOutputSerializer.Meta.fields, "secret"]

    @extend_schema(
        operation_id="webhook_list",
        parameters=[OpenApiParameter("campaign", int, required=False)],
        responses={200: WebhookOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        campaign_id = request.query_params.get("campaign")
        if campaign_id:
            try:
                campaign_id = int(campaign_id)
            except ValueError:
                campaign_id = 0
            campaign = campaign_get_for_user(
                user=request.user, campaign_id=campaign_id, roles=MANAGERS
            )
            webhooks = Webhook.objects.filter(campaign=campaign)
        else:
            site_webhooks_authorise(request.user)
            webhooks = Webhook.objects.filter(campaign__isnull=True)
        return Response(WebhookOutputSerializer(webhooks[:500], many=True).data)

    @extend_schema(
        operation_id="webhook_create",
        request=InputSerializer,
        responses={201: CreatedSerializer, **ERRORS},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        campaign = None
        if values.get("campaign"):
            campaign = campaign_get_for_user(
                user=request.user, campaign_id=values["campaign"], roles=MANAGERS
            )
        else:
            site_webhooks_authorise(request.user)
        webhook = webhook_create(
            url=values["url"], events=values["events"], campaign=campaign, created_by=request.user
        )
        return Response(self.CreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    @extend_schema(operation_id="webhook_delete", responses={204: None, **ERRORS})
    def delete(self, request, webhook_id: int):
        webhook_delete(webhook=webhook_get_for_user(user=request.user, webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(APIView):
    """Send a test event (`ping`) to the endpoint; follow it in its deliveries."""

    @extend_schema(request=None, responses={202: DeliveryOutputSerializer, **ERRORS})
    def post(self, request, webhook_id: int):
        webhook = webhook_get_for_user(user=request.user, webhook_id=webhook_id)
        delivery = webhook_test_send(webhook=webhook)
        return Response(DeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(APIView):
    """The endpoint's latest deliveries, newest first: status, attempts, last error."""

    @extend_schema(responses={200: DeliveryOutputSerializer(many=True), **ERRORS})
    def get(self, request, webhook_id: int):
        webhook = webhook_get_for_user(user=request.user, webhook_id=webhook_id)
        deliveries = webhook.deliveries.order_by("-id")[:DELIVERIES_SHOWN]
        return Response(DeliveryOutputSerializer(deliveries, many=True).data)
