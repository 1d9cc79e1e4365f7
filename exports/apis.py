"""The exports REST API: request an export (202), follow it, download its files.

Researchers and campaign admins only; annotators get 403, non-members 404.
"""

import json
import re

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import renderers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.access import READERS, campaign_get_for_user
from exports.access import export_get_for_user
from exports.combined import MAX_CAMPAIGNS
from exports.models import Export
from exports.selectors import export_file_path, export_files
from exports.services import export_create
from pickwise.api import ERRORS
from pickwise.errors import ApplicationError

ONE_OR_SEVERAL = "Give either campaign (one id) or campaigns (a list of ids)."
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 20


class OctetStreamRenderer(renderers.BaseRenderer):
    """Lets clients ask for the file itself (Accept: application/octet-stream); errors are
    still JSON."""

    media_type = "application/octet-stream"
    format = "bin"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if isinstance(data, dict) else data


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)
    url = serializers.CharField()


class ExportOutputSerializer(serializers.ModelSerializer):
    sources = serializers.ListField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="Every campaign of a combined export, in order; [] for one campaign.",
    )
    progress = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "campaign",
            "sources",
            "version",
            "format",
            "criterion",
            "policy",
            "splits",
            "seed",
            "status",
            "progress",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "manifest",
            "files",
        ]

    def get_progress(self, export) -> dict:
        return {"done": export.progress_done, "total": export.progress_total}

    @extend_schema_field(ExportFileSerializer(many=True))
    def get_files(self, export) -> list[dict]:
        return [
            {
                "name": entry["name"],
                "size": entry.get("size"),
                "sha256": entry.get("sha256"),
                "url": f"/api/exports/{export.pk}/files/{entry['name']}",
            }
            for entry in export_files(export=export)
        ]


class ExportCreateApi(APIView):
    """Request an export of a campaign, or of several as one dataset (`campaigns`: ids in
    order, same kind and criterion); it is built in the background (202)."""

    class InputSerializer(serializers.Serializer):
        campaign = serializers.IntegerField(min_value=1, required=False)
        campaigns = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            min_length=1,
            max_length=MAX_CAMPAIGNS,
            required=False,
            help_text="Several campaigns combined into one dataset, instead of `campaign`.",
        )
        format = serializers.CharField(max_length=32)
        criterion = serializers.CharField(max_length=32, required=False)
        seed = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False)
        policy = serializers.DictField(required=False)
        splits = serializers.DictField(required=False)

    @extend_schema(request=InputSerializer, responses={202: ExportOutputSerializer, **ERRORS})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        one, several = fields.pop("campaign", None), fields.pop("campaigns", None)
        if (one is None) == (several is None):
            raise ApplicationError(ONE_OR_SEVERAL, code="invalid")
        campaigns = [
            campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=READERS)
            for campaign_id in (several or [one])
        ]
        export = export_create(
            requested_by=request.user, campaign=campaigns[0], also=campaigns[1:], **fields
        )
        return Response(ExportOutputSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    @extend_schema(responses={200: ExportOutputSerializer, **ERRORS})
    def get(self, request, export_id: int):
        export = export_get_for_user(user=request.user, export_id=export_id)
        return Response(ExportOutputSerializer(export).data)


class _Window:
    """A file read from an offset for a fixed length: the body of a 206 response."""

    def __init__(self, handle, length: int) -> None:
        self.handle = handle
        self.left = length

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


def _byte_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(first, last) for a single satisfiable range, None to ignore the header (malformed
    or several ranges: the whole file is sent), False when unsatisfiable."""
    match = RANGE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


class ExportFileApi(APIView):
    """Download one file of a finished export, streamed; single byte ranges are honoured."""

    renderer_classes = [renderers.JSONRenderer, OctetStreamRenderer]

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (206, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such export, or no such file in it"),
            416: OpenApiResponse(description="Range not satisfiable"),
        }
    )
    def get(self, request, export_id: int, name: str):
        export = export_get_for_user(user=request.user, export_id=export_id)
        path = export_file_path(export=export, name=name)
        size = path.stat().st_size
        wanted = _byte_range(request.headers.get("Range", ""), size)
        if wanted is False:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        handle = path.open("rb")
        if wanted is None:
            response = FileResponse(handle, as_attachment=True, filename=path.name)
        else:
            first, last = wanted
            handle.seek(first)
            response = FileResponse(
                _Window(handle, last - first + 1),
                status=206,
                as_attachment=True,
                filename=path.name,
            )
            response["Content-Length"] = str(last - first + 1)
            response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Accept-Ranges"] = "bytes"
        response.block_size = CHUNK
        return response
