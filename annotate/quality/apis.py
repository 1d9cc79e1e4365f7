"""The quality API: the campaign's quality report, and admin gate overrides."""

from django.contrib.auth import get_user_model
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import MANAGERS, READERS, campaign_get_for_user
from annotate.models import Membership
from annotate.quality.selectors import quality_summary
from annotate.quality.services import rater_gate_override
from pickwise.api import ERRORS


class QualitySummaryApi(APIView):
    """Alpha per criterion with intervals, the rater table, gate events, leaderboard, alerts."""

    class OutputSerializer(serializers.Serializer):
        agreement = serializers.ListField(child=serializers.DictField())
        raters = serializers.ListField(child=serializers.DictField())
        gate_events = serializers.ListField(child=serializers.DictField())
        leaderboard = serializers.ListField(child=serializers.DictField())
        alerts = serializers.ListField(child=serializers.DictField())
        policy = serializers.DictField()

    @extend_schema(responses={200: OutputSerializer, **ERRORS})
    def get(self, request, campaign_id: int):
        campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=READERS)
        return Response(self.OutputSerializer(quality_summary(campaign=campaign)).data)


class RaterGateOverrideApi(APIView):
    """A campaign admin sets a rater's gate state with a reason (blocking excludes their
    judgments and reopens their comparisons; unblocking restores what still fits)."""

    class InputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=Membership.Gate.choices)
        reason = serializers.CharField(max_length=500)
        hold = serializers.BooleanField(default=True)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        from_state = serializers.CharField()
        to_state = serializers.CharField()
        rule = serializers.CharField()
        reason = serializers.CharField()
        figures = serializers.DictField()
        created_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, **ERRORS})
    def post(self, request, campaign_id: int, user_id: int):
        campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGERS)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rater = get_user_model().objects.filter(pk=user_id).first()
        if rater is None:
            raise Http404
        event = rater_gate_override(
            campaign=campaign, user=rater, by=request.user, **data.validated_data
        )
        return Response(self.OutputSerializer(event).data)
