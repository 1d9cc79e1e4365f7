"""The generation REST API: start a job for a campaign, follow its progress, cancel it."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import campaign_get_for_user
from annotate.models import Membership
from generation.access import generation_job_get_for_user, user_may_list_generators
from generation.models import MAX_JOB_SEED, MAX_SEEDS_PER_PROMPT, GenerationJob, Generator
from generation.selectors import (
    generation_job_errors,
    generation_job_list,
    generation_job_progress,
    generator_list,
)
from generation.services.jobs import generation_job_cancel, generation_job_start
from pickwise.api import ERRORS
from pickwise.errors import ApplicationError

ADMIN_ONLY = (Membership.Role.ADMIN,)
MAX_GENERATORS_PER_JOB = 32
MAY_NOT_LIST_GENERATORS = "Only campaign admins may list generators."


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    finished = serializers.IntegerField()


class ItemErrorSerializer(serializers.Serializer):
    prompt = serializers.IntegerField()
    generator = serializers.CharField()
    index = serializers.IntegerField()
    seed = serializers.IntegerField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()


class GenerationJobOutputSerializer(serializers.ModelSerializer):
    generators = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    gold = serializers.IntegerField(source="gold_count", allow_null=True)
    progress = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = [
            "id",
            "campaign",
            "status",
            "generators",
            "seeds_per_prompt",
            "seed",
            "gold",
            "progress",
            "comparisons_created",
            "gold_created",
            "error",
            "errors",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, job) -> dict:
        return generation_job_progress(job=job)

    @extend_schema_field(ItemErrorSerializer(many=True))
    def get_errors(self, job) -> list[dict]:
        return generation_job_errors(job=job)


class GenerationJobsApi(APIView):
    """POST starts generating the campaign's images (202); GET lists its generation jobs."""

    class InputSerializer(serializers.Serializer):
        generators = serializers.ListField(
            child=serializers.CharField(max_length=200),
            min_length=1,
            max_length=MAX_GENERATORS_PER_JOB,
            help_text="Generator names (or ids).",
        )
        seeds_per_prompt = serializers.IntegerField(min_value=1, max_value=MAX_SEEDS_PER_PROMPT)
        seed = serializers.IntegerField(min_value=0, max_value=MAX_JOB_SEED, default=0)
        gold = serializers.IntegerField(
            min_value=0,
            max_value=10_000,
            allow_null=True,
            default=None,
            help_text="Gold items wanted once done; null: max(15, 2% of comparisons).",
        )

    @extend_schema(
        operation_id="generation_job_start",
        request=InputSerializer,
        responses={
            202: GenerationJobOutputSerializer,
            409: OpenApiResponse(description="A job is running already"),
            **ERRORS,
        },
    )
    def post(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = generation_job_start(
            campaign=campaign,
            generators=data.validated_data["generators"],
            seeds_per_prompt=data.validated_data["seeds_per_prompt"],
            seed=data.validated_data["seed"],
            gold_count=data.validated_data["gold"],
            created_by=request.user,
        )
        return Response(GenerationJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="generation_job_list",
        responses={200: GenerationJobOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        jobs = generation_job_list(campaign=campaign)[:100]
        return Response(GenerationJobOutputSerializer(jobs, many=True).data)


class GenerationJobDetailApi(APIView):
    @extend_schema(responses={200: GenerationJobOutputSerializer, **ERRORS})
    def get(self, request, job_id: int):
        job = generation_job_get_for_user(user=request.user, job_id=job_id)
        return Response(GenerationJobOutputSerializer(job).data)


class GenerationJobCancelApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: GenerationJobOutputSerializer,
            409: OpenApiResponse(description="The job has finished"),
            **ERRORS,
        },
    )
    def post(self, request, job_id: int):
        job = generation_job_get_for_user(user=request.user, job_id=job_id)
        job = generation_job_cancel(job=job)
        return Response(GenerationJobOutputSerializer(job).data)


class GeneratorListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Generator
            fields = [
                "id",
                "name",
                "source",
                "pipeline_class",
                "scheduler",
                "steps",
                "guidance",
                "width",
                "height",
                "dtype",
                "lora_path",
            ]

    @extend_schema(responses={200: OutputSerializer(many=True), **ERRORS})
    def get(self, request):
        if not user_may_list_generators(request.user):
            raise ApplicationError(MAY_NOT_LIST_GENERATORS, code="permission_denied", status=403)
        return Response(self.OutputSerializer(generator_list()[:500], many=True).data)
