"""The OpenAPI schema as client generators read it, and the token schemes it declares."""

import re

import pytest
from rest_framework.authtoken.models import Token

from annotate.authentication import MALFORMED_HEADER
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# The only bodies that carry a file; every other body is JSON alone.
UPLOADS = {
    "images_import": ["multipart/form-data"],
    "prompts_add": ["application/json", "multipart/form-data"],
}


@pytest.fixture
def schema(api_client) -> dict:
    response = api_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_request_body_is_declared_once_as_json_unless_it_uploads_a_file(schema):
    bodies = {
        op["operationId"]: list(op["requestBody"]["content"])
        for _, _, op in operations(schema)
        if "requestBody" in op
    }
    assert bodies, "no request bodies found"
    for operation_id, media_types in bodies.items():
        assert media_types == UPLOADS.get(operation_id, ["application/json"]), operation_id


def test_operation_ids_are_unique_snake_case_names_after_the_api_classes(schema):
    ids = [op["operationId"] for _, _, op in operations(schema)]

    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids
    # drf-spectacular's path-based defaults (campaigns_next_create) read poorly in clients.
    defaults = ("_retrieve", "_partial_update", "_destroy", "_create_create")
    assert not [i for i in ids if i.endswith(defaults) or i.startswith(("campaigns_", "api_"))]
    by_route = {(method, path): op["operationId"] for path, method, op in operations(schema)}
    assert by_route[("post", "/api/auth/token/")] == "token_obtain"
    assert by_route[("post", "/api/campaigns/{campaign_id}/next/")] == "assignment_next"
    assert by_route[("post", "/api/assignments/{assignment_id}/submit/")] == "judgment_submit"
    assert by_route[("get", "/api/exports/{export_id}/")] == "export_get"


def test_enums_have_names_rather_than_hashes(schema):
    names = [name for name in schema["components"]["schemas"] if name.endswith("Enum")]

    assert {"CampaignStatusEnum", "ExportStatusEnum", "TrainingJobStatusEnum"} <= set(names)
    assert not [name for name in names if re.search(r"[0-9a-f]{3}Enum$", name)]


def test_the_token_is_declared_as_http_bearer_and_login_needs_none(schema):
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]

    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    login = schema["paths"]["/api/auth/token/"]["post"]
    assert not login.get("security")
    submit = schema["paths"]["/api/assignments/{assignment_id}/submit/"]["post"]
    assert {"tokenAuth": []} in submit["security"]


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_a_token_authenticates_with_either_keyword(api_client, keyword):
    token = Token.objects.create(user=UserFactory())
    api_client.credentials(HTTP_AUTHORIZATION=f"{keyword} {token.key}")

    assert api_client.get("/api/campaigns/").status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer one two", "Token"])
def test_a_malformed_token_header_gets_401_with_the_expected_forms(api_client, header):
    api_client.credentials(HTTP_AUTHORIZATION=header)
    response = api_client.get("/api/campaigns/")

    assert response.status_code == 401
    assert response.json()["detail"] == MALFORMED_HEADER


def test_an_unknown_bearer_token_gets_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer " + "0" * 40)

    assert api_client.get("/api/campaigns/").status_code == 401


def test_a_form_encoded_body_is_refused_with_415(api_client):
    UserFactory(username="scripter")
    response = api_client.post(
        "/api/auth/token/",
        "username=scripter&password=pw-for-tests-1",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_the_token_endpoint_answers_json(api_client):
    UserFactory(username="scripter")
    response = api_client.post(
        "/api/auth/token/", {"username": "scripter", "password": "pw-for-tests-1"}
    )

    assert response.status_code == 200
    assert len(response.json()["token"]) == 40
