"""Text no database can store gets a clear 400 on every input path, never a 500.

Run on PostgreSQL too (DATABASE_URL): it refuses NUL in text and jsonb, and its B-tree
index entries hold at most 2704 bytes.
"""

import io
import json
import random

import pytest
from django.urls import reverse

from annotate.models import Campaign, Image, Prompt
from annotate.services.image_imports import images_import
from annotate.services.prompts import MAX_PROMPT_BYTES
from pickwise.errors import ApplicationError
from pickwise.text_input import (
    BODY,
    LONE_SURROGATE,
    MAX_JSON_DEPTH,
    NUL_CHARACTER,
    TOO_DEEP,
    TOO_MANY_BYTES,
    json_problem,
)
from tests.factories import (
    CampaignFactory,
    UserFactory,
    manifest_csv,
    pickapic_parquet,
    pickapic_row,
    png_bytes,
    user_as,
    zip_bytes,
)

pytestmark = pytest.mark.django_db

NUL = "\x00"
SURROGATE = "\ud800"


def _cjk(count: int) -> str:
    # Random CJK ideographs (3 bytes each): nothing for the index to compress away.
    rng = random.Random(count)
    return "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(count))


def _emoji(count: int) -> str:
    rng = random.Random(count)
    return "".join(chr(rng.randrange(0x1F300, 0x1F5FF)) for _ in range(count))


@pytest.fixture
def admin_client(api_client):
    campaign = CampaignFactory()
    api_client.force_authenticate(user_as(campaign, "admin"))
    api_client.campaign = campaign
    return api_client


def _raw_post(client, url, body: str):
    # json.dumps would escape lone surrogates itself; the raw text is what an attacker sends.
    return client.generic("POST", url, body.encode("utf-8", "surrogatepass"), "application/json")


def _prompts_url(campaign):
    return reverse("annotate:prompts", args=[campaign.pk])


# Prompt text in the unique index -----------------------------------------------------------


@pytest.mark.parametrize(
    "text", [_cjk(1000), _emoji(2000), _emoji(601)], ids=["1000 CJK", "2000 emoji", "601 emoji"]
)
def test_a_prompt_too_long_in_bytes_for_the_index_is_a_400(admin_client, text):
    response = admin_client.post(
        _prompts_url(admin_client.campaign), {"prompts": [text]}, format="json"
    )
    assert response.status_code == 400, response.content
    size = len(text.encode())
    error = TOO_MANY_BYTES.format(field="'text'", size=size, limit=MAX_PROMPT_BYTES)
    assert response.json()["errors"] == [{"line": 1, "error": error}]
    assert not Prompt.objects.exists()


@pytest.mark.parametrize("text", [_cjk(800), _emoji(600), "x" * 2000], ids=["CJK", "emoji", "a"])
def test_a_prompt_at_the_byte_limit_is_stored_and_indexed(admin_client, text):
    assert len(text.encode()) <= MAX_PROMPT_BYTES
    response = admin_client.post(
        _prompts_url(admin_client.campaign), {"prompts": [text]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Prompt.objects.get().text == text


def test_a_prompt_file_line_too_long_in_bytes_is_a_bad_line(admin_client):
    upload = io.BytesIO(("fine\n" + _cjk(1000) + "\n").encode())
    upload.name = "prompts.txt"
    response = admin_client.post(
        _prompts_url(admin_client.campaign), {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["line"] == 2
    assert not Prompt.objects.exists()


# NUL and lone surrogates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "field"),
    [
        ({"text": f"a{NUL}b"}, "'text'"),
        ({"text": "a", "negative_prompt": f"x{NUL}"}, "'negative_prompt'"),
        ({"text": "a", "meta": {"k": f"v{NUL}"}}, "'meta'"),
        ({"text": "a", "meta": {f"k{NUL}": 1}}, "'meta'"),
    ],
)
def test_a_nul_in_a_prompt_row_is_a_clear_400(admin_client, prompt, field):
    # Through the service's own check (the JSON body parser refuses it first otherwise).
    from annotate.services.prompts import prompt_rows_from_payload

    with pytest.raises(ApplicationError) as error:
        prompt_rows_from_payload(prompts=[prompt])
    assert error.value.extra["errors"] == [{"line": 1, "error": NUL_CHARACTER.format(field=field)}]


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800", "\\udfff", "a\\ud83d"])
@pytest.mark.parametrize(
    "body",
    [
        '{"prompts": [{"text": "%s"}]}',
        '{"prompts": [{"text": "a", "negative_prompt": "%s"}]}',
        '{"prompts": [{"text": "a", "meta": {"k": "%s"}}]}',
        '{"prompts": [{"text": "a", "meta": {"%s": 1}}]}',
    ],
)
def test_nul_or_a_lone_surrogate_in_any_json_body_is_a_400(admin_client, body, bad):
    response = _raw_post(admin_client, _prompts_url(admin_client.campaign), body % bad)
    assert response.status_code == 400, response.content
    problem = NUL_CHARACTER if bad == "\\u0000" else LONE_SURROGATE
    assert response.json() == {"detail": problem.format(field=BODY), "code": "parse_error"}
    assert not Prompt.objects.exists()


def test_a_proper_surrogate_pair_is_ordinary_text(admin_client):
    response = _raw_post(
        admin_client, _prompts_url(admin_client.campaign), '{"prompts": ["a \\ud83d\\ude00"]}'
    )
    assert response.status_code == 201
    assert Prompt.objects.get().text == "a \U0001f600"


def test_qc_policy_with_a_nul_is_a_400(admin_client):
    campaign = admin_client.campaign
    url = reverse("annotate:campaign", args=[campaign.pk])
    response = admin_client.generic(
        "PATCH", url, '{"qc_policy": {"gold_min": "\\u0000"}}', "application/json"
    )
    assert response.status_code == 400
    assert Campaign.objects.get(pk=campaign.pk).qc_policy == campaign.qc_policy


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("p.txt", f"fine\nbad{NUL}line\n".encode()),
        ("p.jsonl", b'{"text": "fine"}\n{"text": "bad\\u0000"}\n'),
        ("p.jsonl", b'{"text": "fine"}\n{"text": "bad\\ud800"}\n'),
        ("p.jsonl", b'{"text": "fine"}\n{"text": "a", "meta": {"k": "\\u0000"}}\n'),
        ("p.csv", f"text,source\nfine,x\nbad,y{NUL}\n".encode()),
        ("p.json", b'["fine", {"text": "a", "negative_prompt": "\\ud800"}]'),
    ],
)
def test_prompt_files_with_unstorable_text_name_the_bad_line(admin_client, name, data):
    upload = io.BytesIO(data)
    upload.name = name
    response = admin_client.post(
        _prompts_url(admin_client.campaign), {"file": upload}, format="multipart"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert "NUL" in json.dumps(body) or "surrogate" in json.dumps(body)
    assert not Prompt.objects.exists()


def test_a_deep_json_prompt_file_is_a_400(admin_client):
    upload = io.BytesIO(b"[" * 50_000 + b"]" * 50_000)
    upload.name = "p.json"
    response = admin_client.post(
        _prompts_url(admin_client.campaign), {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == TOO_DEEP.format(field="The file", limit=MAX_JSON_DEPTH)


# Image imports: manifests and parquet ----------------------------------------------------


def _import_errors(campaign, data: bytes) -> list[dict]:
    with pytest.raises(ApplicationError) as error:
        images_import(campaign=campaign, source=io.BytesIO(data))
    assert error.value.code == "invalid_rows"
    assert not Prompt.objects.exists() and not Image.objects.exists()
    return error.value.extra["errors"]


@pytest.mark.parametrize(
    ("column", "value"),
    [("prompt", f"a{NUL}cat"), ("model_name", f"m{NUL}"), ("extra", NUL)],
)
def test_a_manifest_line_with_a_nul_is_a_bad_line(column, value):
    row = {"prompt": "a cat", "file": "a.png", "model_name": "m", column: value}
    columns = ("prompt", "file", "model_name", *(("extra",) if column == "extra" else ()))
    archive = zip_bytes(
        {"manifest.csv": manifest_csv([row], columns=columns), "a.png": png_bytes()}
    )
    errors = _import_errors(CampaignFactory(), archive)
    assert errors == [{"line": 2, "error": NUL_CHARACTER.format(field=f"column {column!r}")}]


@pytest.mark.parametrize("caption", [f"a{NUL}cube", _cjk(1000)])
def test_a_parquet_caption_the_database_cannot_store_is_a_bad_row(caption):
    errors = _import_errors(CampaignFactory(), pickapic_parquet([pickapic_row(caption)]))
    assert len(errors) == 1 and errors[0]["row"] == 0


def test_a_parquet_caption_that_is_not_utf8_is_refused_clearly():
    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotate.services.image_imports.messages import PARQUET_NOT_UTF8

    table = pq.read_table(io.BytesIO(pickapic_parquet([pickapic_row("a cube")])))
    broken = pa.array([b"a\xed\xa0\x80cube"], type=pa.binary()).view(pa.string())
    table = table.set_column(table.schema.get_field_index("caption"), "caption", broken)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    with pytest.raises(ApplicationError) as error:
        images_import(campaign=CampaignFactory(), source=io.BytesIO(buffer.getvalue()))
    assert error.value.message == PARQUET_NOT_UTF8


def test_a_parquet_model_name_with_a_nul_is_a_bad_row():
    row = pickapic_row("a cube", model_0=f"m{NUL}")
    errors = _import_errors(CampaignFactory(), pickapic_parquet([row]))
    assert errors == [{"row": 0, "error": NUL_CHARACTER.format(field="column 'model_0'")}]


# Nesting depth -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 50_000])
def test_the_anonymous_token_endpoint_refuses_deep_json_with_a_400(api_client, depth):
    body = '{"username": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = _raw_post(api_client, "/api/auth/token/", body)
    assert response.status_code == 400
    assert response.json() == {
        "detail": TOO_DEEP.format(field=BODY, limit=MAX_JSON_DEPTH),
        "code": "parse_error",
    }


def test_deep_json_on_an_authenticated_endpoint_is_a_400(admin_client):
    campaign = admin_client.campaign
    url = reverse("annotate:campaign", args=[campaign.pk])
    body = '{"qc_policy": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"
    response = admin_client.generic("PATCH", url, body, "application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_json_as_deep_as_allowed_still_parses(api_client):
    UserFactory(username="scripter")
    # username is not a string, so the serializer answers, not the parser.
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    response = _raw_post(api_client, "/api/auth/token/", '{"username": ' + nested + "}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_json_problem_walks_keys_values_and_depth_without_recursion():
    assert json_problem({"a": [1, "b", {"c": None}]}, field="x") is None
    assert json_problem([[["\x00"]]], field="x") == NUL_CHARACTER.format(field="x")
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_problem(deep, field="x") == TOO_DEEP.format(field="x", limit=MAX_JSON_DEPTH)


# The admin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"text": "fine", "meta": '{"k": "\\u0000"}'}, "NUL"),
        ({"text": "fine", "meta": '{"k": "\\ud800"}'}, "surrogate"),
        ({"text": "fine", "meta": "[" * 5000 + "]" * 5000}, "nested"),
        ({"text": _cjk(1000), "meta": "{}"}, "bytes in UTF-8"),
    ],
)
def test_the_admin_refuses_unstorable_prompt_fields_as_form_errors(client, fields, error):
    campaign = CampaignFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/annotate/prompt/add/",
        {"campaign": campaign.pk, "negative_prompt": "", **fields},
    )
    assert response.status_code == 200  # the form again, with the error
    assert error in response.content.decode()
    assert not Prompt.objects.exists()


def test_the_admin_refuses_a_campaign_policy_with_a_nul(client):
    campaign = CampaignFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(f"/admin/annotate/campaign/{campaign.pk}/change/")
    form = page.context["adminform"].form
    data = {
        name: json.dumps(value) if isinstance(value, dict | list) else value
        for name, value in form.initial.items()
        if value is not None
    }
    data["qc_policy"] = '{"gold_min": "\\u0000"}'
    response = client.post(f"/admin/annotate/campaign/{campaign.pk}/change/", data)
    assert response.status_code == 200
    assert "NUL" in response.content.decode()
