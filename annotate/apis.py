"""The annotation REST API. Thin: parse, fetch-and-authorise, call a service, serialise."""

from django.conf import settings
from django.contrib.auth import authenticate
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from annotate.access import (
    assignment_get_for_annotator,
    campaign_creator_authorise,
    campaign_get_for_annotator,
    campaign_get_for_user,
    campaign_role,
    image_import_get_for_user,
)
from annotate.models import Campaign, ImageImport, Membership
from annotate.selectors import (
    ANNOTATOR_FIGURES,
    annotator_progress,
    assignment_task,
    campaign_list_newest_for_user,
    campaign_progress,
)
from annotate.services.assignments import assignment_next, assignment_skip
from annotate.services.campaigns import (
    CAMPAIGN_FIELDS,
    campaign_create,
    campaign_update,
)
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.gold import gold_build
from annotate.services.image_imports.jobs import image_import_create
from annotate.services.judgment_undo import judgment_undo
from annotate.services.judgments import judgment_answers_match, judgment_submit
from annotate.services.members import members_set
from annotate.services.prompts import prompt_rows_from_payload, prompt_rows_parse, prompts_add
from annotate.uploads import declared_body_size
from pickwise.api import ERRORS, ErrorSerializer
from pickwise.errors import ApplicationError
from pickwise.login_throttle import login_locked, login_locked_message
from pickwise.text_input import StorableJSONParser

ADMIN_ONLY = (Membership.Role.ADMIN,)
INVALID_CREDENTIALS = "Unable to log in with the given username and password."
UPLOAD_TOO_LARGE = "The upload is {size} bytes; the limit is {limit}."
NEEDS_PROMPTS_OR_FILE = "Send {prompts: [...]} as JSON or a txt/csv/json/jsonl file as 'file'."


class TokenObtainApi(APIView):
    """POST trades a username and password for a token; DELETE revokes the caller's token."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    def get_authenticators(self):
        # Logging in needs no credentials (and no CSRF token); revoking needs the token itself.
        if self._is_login():
            return []
        return super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._is_login() else super().get_permissions()

    def _is_login(self) -> bool:
        # The schema generator inspects views without a request.
        return getattr(self.request, "method", None) == "POST"

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()

    @extend_schema(
        operation_id="token_obtain",
        request=InputSerializer,
        responses={200: OutputSerializer, **ERRORS},
        auth=[],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if login_locked(request=request, username=data.validated_data["username"]):
            raise ApplicationError(login_locked_message(), code="throttled", status=429)
        user = authenticate(request, **data.validated_data)
        if user is None:
            raise ApplicationError(INVALID_CREDENTIALS, code="invalid_credentials", status=400)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(operation_id="token_revoke", request=None, responses={204: None, **ERRORS})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class CriterionSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=32)
    question = serializers.CharField(max_length=300)
    allow_tie = serializers.BooleanField(default=False)
    allow_both_bad = serializers.BooleanField(default=False)


class CampaignOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = ["id", "slug", *CAMPAIGN_FIELDS, "created_at"]


# What annotators see of a campaign. Nothing here may move differently for a gold, a repeat
# and a regular task (gold and repeat rates, the QC policy, live counters such as in_flight
# or judgments done would each tell them apart), so only the fixed description is shown.
ANNOTATOR_CAMPAIGN_FIELDS = [
    "id",
    "slug",
    "title",
    "instructions",
    "kind",
    "k",
    "criteria",
    "qualification_size",
    "lease_seconds",
    "status",
    "created_at",
]


class CampaignAnnotatorOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = ANNOTATOR_CAMPAIGN_FIELDS


class CampaignAnnotatorDetailSerializer(CampaignAnnotatorOutputSerializer):
    """What an annotator reads of one campaign: the description and their own figures, as
    their screen shows them (annotate.selectors.annotator_progress)."""

    mine = serializers.SerializerMethodField(
        help_text="judged: your answers of every kind; skipped; qualifying and "
        "qualification_done while you answer the practice items."
    )

    class Meta(CampaignAnnotatorOutputSerializer.Meta):
        fields = [*ANNOTATOR_CAMPAIGN_FIELDS, "mine"]

    def get_mine(self, campaign) -> dict:
        progress = annotator_progress(campaign=campaign, user=self.context["user"])
        return {name: progress[name] for name in ANNOTATOR_FIGURES}


class CampaignFieldsSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    instructions = serializers.CharField(max_length=20000, allow_blank=True, required=False)
    kind = serializers.ChoiceField(choices=Campaign.Kind.choices, required=False)
    k = serializers.IntegerField(min_value=2, max_value=9, required=False)
    criteria = CriterionSerializer(many=True, required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
    dynamic_overlap = serializers.BooleanField(
        required=False,
        help_text="Off (the default): every comparison gets `overlap` judgments. On: each "
        "starts at min_raters and stops once its leading side's posterior reaches "
        "confidence; contested ones get more raters, up to max_raters.",
    )
    min_raters = serializers.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        help_text="Dynamic overlap: judgments every comparison gets at least (<= max_raters).",
    )
    max_raters = serializers.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        help_text="Dynamic overlap: judgments a comparison gets at most (>= min_raters).",
    )
    confidence = serializers.FloatField(
        min_value=0.5,
        max_value=1,
        required=False,
        help_text="Dynamic overlap: posterior probability of the leading side that settles a "
        "comparison; above 0.5 and below 1.",
    )
    gold_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    repeat_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    qualification_size = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    lease_seconds = serializers.IntegerField(min_value=10, max_value=86400, required=False)
    pairs_per_prompt = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    active_sampling = serializers.BooleanField(required=False)
    qc_policy = serializers.DictField(required=False)
    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False)


CAMPAIGN_LIST_LIMIT = 500


class CampaignListCreateApi(APIView):
    """GET lists the campaigns you take part in; POST creates one (campaign creators only)."""

    class InputSerializer(CampaignFieldsSerializer):
        slug = serializers.SlugField(max_length=64)

    @extend_schema(
        operation_id="campaign_list",
        responses={200: CampaignOutputSerializer(many=True)},
        description="Campaigns you annotate show only the fields of CampaignAnnotatorOutput.",
    )
    def get(self, request):
        campaigns = campaign_list_newest_for_user(user=request.user, limit=CAMPAIGN_LIST_LIMIT)
        return Response(
            [
                (
                    CampaignAnnotatorOutputSerializer
                    if campaign.annotating
                    else CampaignOutputSerializer
                )(campaign).data
                for campaign in campaigns
            ]
        )

    @extend_schema(
        operation_id="campaign_create",
        request=InputSerializer,
        responses={201: CampaignOutputSerializer, **ERRORS},
    )
    def post(self, request):
        campaign_creator_authorise(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = campaign_create(created_by=request.user, **data.validated_data)
        return Response(CampaignOutputSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    class InputSerializer(CampaignFieldsSerializer):
        title = serializers.CharField(max_length=200, required=False)

    class OutputSerializer(CampaignOutputSerializer):
        progress = serializers.SerializerMethodField()

        class Meta(CampaignOutputSerializer.Meta):
            fields = [*CampaignOutputSerializer.Meta.fields, "progress"]

        def get_progress(self, campaign) -> dict:
            return campaign_progress(campaign=campaign)

    @extend_schema(
        operation_id="campaign_get",
        responses={
            200: PolymorphicProxySerializer(
                component_name="CampaignDetailForRole",
                serializers=[OutputSerializer, CampaignAnnotatorDetailSerializer],
                resource_type_field_name=None,
            ),
            **ERRORS,
        },
        description="Annotators get CampaignAnnotatorDetail: the description and their own "
        "figures (mine), no campaign progress.",
    )
    def get(self, request, campaign_id: int):
        campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id)
        role = campaign_role(user=request.user, campaign=campaign)
        if role == Membership.Role.ANNOTATOR:
            detail = CampaignAnnotatorDetailSerializer(campaign, context={"user": request.user})
            return Response(detail.data)
        return Response(self.OutputSerializer(campaign).data)

    @extend_schema(
        operation_id="campaign_update",
        request=InputSerializer,
        responses={200: OutputSerializer, **ERRORS},
    )
    def patch(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        campaign = campaign_update(campaign=campaign, **data.validated_data)
        return Response(self.OutputSerializer(campaign).data)


class PromptsAddApi(APIView):
    """Bulk add prompts as JSON, or upload a txt/csv/json/jsonl file as `file`."""

    parser_classes = [StorableJSONParser, MultiPartParser]

    class InputSerializer(serializers.Serializer):
        prompts = serializers.ListField(child=serializers.JSONField(), max_length=100_000)

    class UploadSerializer(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(
            choices=["txt", "csv", "json", "jsonl"],
            required=False,
            help_text="The file's format; by default its extension.",
        )

    @extend_schema(
        request={"application/json": InputSerializer, "multipart/form-data": UploadSerializer},
        responses={201: dict, **ERRORS},
    )
    def post(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        upload = request.FILES.get("file")
        if upload is not None:
            from django.conf import settings

            if upload.size > settings.PICKWISE_MAX_UPLOAD_BYTES:
                raise ApplicationError(
                    UPLOAD_TOO_LARGE.format(
                        size=upload.size, limit=settings.PICKWISE_MAX_UPLOAD_BYTES
                    ),
                    code="too_large",
                    status=413,
                )
            fmt = request.data.get("format") or upload.name.rsplit(".", 1)[-1].lower()
            rows = prompt_rows_parse(data=upload.read(), fmt=fmt)
        elif "prompts" in request.data:
            rows = prompt_rows_from_payload(prompts=request.data.get("prompts"))
        else:
            raise ApplicationError(NEEDS_PROMPTS_OR_FILE, code="invalid")
        result = prompts_add(campaign=campaign, rows=rows)
        return Response(result.as_dict(), status=status.HTTP_201_CREATED)


class MembersSetApi(APIView):
    class InputSerializer(serializers.Serializer):
        class MemberSerializer(serializers.Serializer):
            username = serializers.CharField(max_length=150)
            role = serializers.ChoiceField(choices=Membership.Role.choices)

        members = MemberSerializer(many=True, max_length=10_000)

    @extend_schema(request=InputSerializer, responses={200: dict, **ERRORS})
    def post(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = members_set(campaign=campaign, members=data.validated_data["members"])
        return Response(
            {
                "members": [
                    {"username": m.user.username, "role": m.role, "gate_state": m.gate_state}
                    for m in result
                ]
            }
        )


class ComparisonsBuildApi(APIView):
    """Build regular comparisons from the campaign's images, and automatic gold items."""

    class InputSerializer(serializers.Serializer):
        gold = serializers.IntegerField(min_value=0, max_value=10_000, default=0)

    @extend_schema(request=InputSerializer, responses={200: dict, **ERRORS})
    def post(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = comparisons_build_for_campaign(campaign=campaign)
        gold = gold_build(campaign=campaign, count=data.validated_data["gold"])
        return Response({"comparisons_created": created, "gold_created": len(gold)})


class TaskImageSerializer(serializers.Serializer):
    uid = serializers.CharField()
    url = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class TaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    expires_at = serializers.DateTimeField()
    prompt = serializers.DictField()
    images = TaskImageSerializer(many=True)
    criteria = CriterionSerializer(many=True)


_DATETIME = serializers.DateTimeField()


def _task_data(task: dict) -> dict:
    """The task as TaskSerializer renders it, built directly: the task is plain data already,
    and walking it through the nested serializers cost a millisecond of every next."""
    return {
        **task,
        "expires_at": _DATETIME.to_representation(task["expires_at"]),
        "criteria": [
            {
                "key": c["key"],
                "question": c["question"],
                "allow_tie": bool(c.get("allow_tie", False)),
                "allow_both_bad": bool(c.get("allow_both_bad", False)),
            }
            for c in task["criteria"]
        ],
    }


class AssignmentNextApi(APIView):
    """Your next task. `exclude` lists tasks you hold already, to reserve one more ahead."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "next"

    class InputSerializer(serializers.Serializer):
        exclude = serializers.ListField(
            child=serializers.IntegerField(min_value=1), max_length=10, default=list
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: TaskSerializer, 204: OpenApiResponse(description="Nothing left"), **ERRORS},
    )
    def post(self, request, campaign_id: int):
        campaign, _ = campaign_get_for_annotator(user=request.user, campaign_id=campaign_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = assignment_next(
            campaign=campaign,
            annotator=request.user,
            exclude_ids=tuple(data.validated_data["exclude"]),
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment.campaign = campaign
        return Response(_task_data(assignment_task(assignment=assignment)))


class JudgmentSubmitApi(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "submit"

    class InputSerializer(serializers.Serializer):
        answers = serializers.DictField(child=serializers.JSONField(), allow_empty=False)
        duration_ms = serializers.IntegerField(
            min_value=0, max_value=86_400_000, required=False, allow_null=True
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        assignment = serializers.IntegerField(source="assignment_id")
        answers = serializers.DictField(help_text="The stored answers.")
        created_at = serializers.DateTimeField()
        first_answer_stands = serializers.BooleanField(
            default=False,
            help_text="True on a 200 whose answers differ from the stored ones: the task was "
            "answered before (another tab, device or a late resend) and that first answer "
            "stands; the one sent now is not stored. False on a 201, and on a 200 that "
            "resends the stored answer.",
        )

    @extend_schema(
        request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer, **ERRORS}
    )
    def post(self, request, assignment_id: int):
        assignment = assignment_get_for_annotator(user=request.user, assignment_id=assignment_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judgment, created = judgment_submit(
            assignment=assignment,
            answers=data.validated_data["answers"],
            duration_ms=data.validated_data.get("duration_ms"),
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        first_stands = not created and not judgment_answers_match(
            judgment=judgment, campaign=assignment.campaign, answers=data.validated_data["answers"]
        )
        # What OutputSerializer documents, built directly (see _task_data).
        data = {
            "id": judgment.pk,
            "assignment": judgment.assignment_id,
            "answers": judgment.answers,
            "created_at": _DATETIME.to_representation(judgment.created_at),
            "first_answer_stands": first_stands,
        }
        return Response(data, status=code)


class AssignmentSkipApi(APIView):
    @extend_schema(request=None, responses={200: dict, **ERRORS})
    def post(self, request, assignment_id: int):
        assignment = assignment_get_for_annotator(user=request.user, assignment_id=assignment_id)
        assignment = assignment_skip(assignment=assignment)
        return Response({"id": assignment.pk, "state": assignment.state})


UNDO_TAKES_NO_BODY = "An undo takes no fields; send an empty body."


class JudgmentUndoApi(APIView):
    """Take back your answer to a pairwise task within seconds of giving it (409 after, or
    once it is no longer your last answer); the task is open again, to answer afresh."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "submit"

    @extend_schema(request=None, responses={200: TaskSerializer, **ERRORS})
    def post(self, request, assignment_id: int):
        assignment = assignment_get_for_annotator(user=request.user, assignment_id=assignment_id)
        if request.data:  # parsed here, so an oversized or malformed body is refused too
            raise ApplicationError(UNDO_TAKES_NO_BODY, code="invalid")
        assignment = judgment_undo(assignment=assignment)
        return Response(_task_data(assignment_task(assignment=assignment)))


class ImageImportOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = ImageImport
        fields = [
            "id",
            "url",
            "campaign",
            "created_by",
            "file_name",
            "size",
            "kind",
            "with_labels",
            "build",
            "status",
            "progress",
            "counts",
            "error",
            "error_code",
            "errors",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, job) -> dict:
        return {"phase": job.phase, "done": job.progress_done, "total": job.progress_total}

    def get_url(self, job) -> str:
        return reverse("annotate:image-import", args=[job.pk])


class ImagesImportApi(APIView):
    """Import images: a zip with manifest.csv, or a Pick-a-Pic parquet file, as `file`.

    manifest.csv has the columns prompt, file (a path in the zip), model_name and optionally
    seed. `with_labels` turns a parquet file's labels into judgments by imported raters.
    The type, size and archive limits are checked at once; every row and image is checked
    by a worker (202 with the job, followed at its `url`). Bad rows fail the job with all
    of them listed, and nothing is imported.
    """

    parser_classes = [MultiPartParser]
    # Multipart boundaries and the small fields around the file.
    MULTIPART_OVERHEAD = 64 * 1024

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        with_labels = serializers.BooleanField(default=False)
        build = serializers.BooleanField(default=True)

        class Meta:
            ref_name = "ImagesImportInput"  # a unique name in the OpenAPI schema

    @extend_schema(
        request=InputSerializer,
        responses={
            202: ImageImportOutputSerializer,
            409: OpenApiResponse(ErrorSerializer, "The same file is being imported already"),
            413: OpenApiResponse(ErrorSerializer, "Upload too large"),
            **ERRORS,
        },
    )
    def post(self, request, campaign_id: int):
        campaign = campaign_get_for_user(
            user=request.user, campaign_id=campaign_id, roles=ADMIN_ONLY
        )
        limit = settings.PICKWISE_MAX_UPLOAD_BYTES
        declared = declared_body_size(request.META)
        if declared > limit + self.MULTIPART_OVERHEAD:
            raise _upload_too_large(declared, limit)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > limit:
            raise _upload_too_large(upload.size, limit)
        job = image_import_create(
            campaign=campaign,
            upload=upload.file,
            file_name=upload.name or "",
            with_labels=data.validated_data["with_labels"],
            build=data.validated_data["build"],
            created_by=request.user,
        )
        body = ImageImportOutputSerializer(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class ImageImportDetailApi(APIView):
    """An image import's status, progress, counts and, when it failed, the bad rows."""

    @extend_schema(responses={200: ImageImportOutputSerializer, **ERRORS})
    def get(self, request, import_id: int):
        job = image_import_get_for_user(user=request.user, import_id=import_id)
        return Response(ImageImportOutputSerializer(job).data)


def _upload_too_large(size: int, limit: int) -> ApplicationError:
    return ApplicationError(
        UPLOAD_TOO_LARGE.format(size=size, limit=limit), code="too_large", status=413
    )
