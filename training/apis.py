"""The training REST API: start a job on an export, follow it, cancel it, evaluate it."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from exports.access import export_get_for_user
from pickwise.api import ERRORS
from training.access import training_job_get_for_user
from training.models import TrainingJob
from training.selectors import (
    training_job_evaluation,
    training_job_metric_series,
    training_job_progress,
)
from training.services.evaluation import evaluation_campaign_create
from training.services.jobs import training_job_cancel, training_job_start

MAX_OPTIONS = 64


class TrainingJobOutputSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="export.campaign_id")
    progress = serializers.SerializerMethodField()
    evaluation = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "name",
            "export",
            "campaign",
            "pretrained",
            "method",
            "mode",
            "options",
            "status",
            "cancel_requested",
            "progress",
            "warnings",
            "error",
            "attempts",
            "output_dir",
            "evaluation",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, job) -> dict:
        return training_job_progress(job=job)

    def get_evaluation(self, job) -> dict | None:
        return training_job_evaluation(job=job)


class TrainingJobDetailOutputSerializer(TrainingJobOutputSerializer):
    series = serializers.SerializerMethodField()

    class Meta(TrainingJobOutputSerializer.Meta):
        fields = [*TrainingJobOutputSerializer.Meta.fields, "series"]

    def get_series(self, job) -> dict:
        return training_job_metric_series(job=job, after_step=self.context.get("after_step", 0))


class TrainingJobStartApi(APIView):
    """POST starts training on a finished pickapic export (202); bad input is refused (400)."""

    class InputSerializer(serializers.Serializer):
        export = serializers.IntegerField(min_value=1)
        pretrained = serializers.CharField(max_length=1000, help_text="Base pipeline folder.")
        method = serializers.ChoiceField(choices=TrainingJob.Method.choices, default="dpo")
        mode = serializers.ChoiceField(choices=TrainingJob.Mode.choices, default="lora")
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        options = serializers.DictField(
            required=False,
            default=dict,
            help_text="Trainer hyper-parameters (python -m training.dpo --help); the rest "
            "keep the trainer's defaults.",
        )

        def validate_options(self, value):
            if len(value) > MAX_OPTIONS:
                raise serializers.ValidationError(f"At most {MAX_OPTIONS} options.")
            return value

    @extend_schema(request=InputSerializer, responses={202: TrainingJobOutputSerializer, **ERRORS})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        export = export_get_for_user(user=request.user, export_id=values["export"])
        job = training_job_start(
            export=export,
            pretrained=values["pretrained"],
            method=values["method"],
            mode=values["mode"],
            options=values["options"],
            name=values["name"],
            created_by=request.user,
        )
        return Response(TrainingJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class TrainingJobDetailApi(APIView):
    """GET: status, live progress (step of total, latest metrics) and the metric series
    (only the steps after ``after_step`` when given, for pages that poll)."""

    class FilterSerializer(serializers.Serializer):
        after_step = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: TrainingJobDetailOutputSerializer, **ERRORS},
    )
    def get(self, request, job_id: int):
        job = training_job_get_for_user(user=request.user, job_id=job_id)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        context = {"after_step": filters.validated_data["after_step"]}
        return Response(TrainingJobDetailOutputSerializer(job, context=context).data)


class TrainingJobCancelApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: TrainingJobOutputSerializer,
            409: OpenApiResponse(description="The job has finished"),
            **ERRORS,
        },
    )
    def post(self, request, job_id: int):
        job = training_job_get_for_user(user=request.user, job_id=job_id)
        job = training_job_cancel(job=job)
        return Response(TrainingJobOutputSerializer(job).data)


class TrainingJobEvaluateApi(APIView):
    """POST makes the base-vs-tuned evaluation campaign of a finished job (201)."""

    class InputSerializer(serializers.Serializer):
        steps = serializers.IntegerField(min_value=1, max_value=1000, default=25)
        guidance = serializers.FloatField(min_value=0.0, max_value=50.0, default=7.5)
        overlap = serializers.IntegerField(min_value=1, max_value=100, default=3)
        seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
        prompts = serializers.IntegerField(
            min_value=1,
            max_value=1000,
            required=False,
            allow_null=True,
            default=None,
            help_text="Held-out prompts to draw; null: all of them.",
        )
        seeds_per_prompt = serializers.IntegerField(min_value=1, max_value=64, default=1)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: TrainingJobOutputSerializer,
            409: OpenApiResponse(description="Not finished, or evaluated already"),
            **ERRORS,
        },
    )
    def post(self, request, job_id: int):
        job = training_job_get_for_user(user=request.user, job_id=job_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation_campaign_create(job=job, by=request.user, **data.validated_data)
        job.refresh_from_db()
        return Response(TrainingJobOutputSerializer(job).data, status=status.HTTP_201_CREATED)
