"""Every operation of the OpenAPI schema, fed hostile input, answers without a 5xx.

A compact schema fuzzer: for each operation it builds a plausible body from the schema, then
replaces one field at a time with a hostile value of every type (NUL, lone surrogates, 2000
emoji, path traversal, huge and negative numbers, deep nesting, wrong types), sends whole
bodies of the wrong shape, and tries hostile path and query parameters (ids past 64 bits).
It runs as a site admin, who reaches the deepest validation, and as an annotator on the
annotation operations. Run it on PostgreSQL (DATABASE_URL), which refuses more than SQLite.
"""

import json
import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from annotate.services.assignments import assignment_next
from annotate.services.gold import gold_build
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DEEP = 60
HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "a" * 20_000,
    "\u4e00\u4e8c" * 600,
    "\U0001f600" * 2000,
    "../../../../etc/passwd",
    "/etc",
    "/proc/1",
    "' OR 1=1; --",
    "%s%n%x",
    "<script>alert(1)</script>",
    "\u202eevil",
    "0",
    "-1",
    "1e309",
    "NaN",
]
HOSTILE_NUMBERS = [-1, 0, 2**31, 2**63, 2**64, -(2**63) - 1, 1e308, -1e308, 0.5]
HOSTILE_OTHERS = [
    None,
    True,
    [],
    [None],
    ["\x00"],
    list(range(5000)),
    {},
    {"\x00": 1},
    {"a": "\ud800"},
]
HOSTILE_VALUES = HOSTILE_STRINGS + HOSTILE_NUMBERS + HOSTILE_OTHERS
HOSTILE_IDS = ["0", "1", "99999999999999999999", "9223372036854775808", "2147483648"]
HOSTILE_QUERY = ["-1", "99999999999999999999", "\x00", "abc", "1e9", "../x"]


def _nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in node:
        merged: dict = {"type": "object", "properties": {}}
        for part in node["allOf"]:
            part = _resolve(schema, part)
            merged["properties"].update(part.get("properties", {}))
        return merged
    if "oneOf" in node:
        return _resolve(schema, node["oneOf"][0])
    return node


def _sample(schema: dict, node: dict, depth: int = 0):
    """A plausible value for a schema node."""
    node = _resolve(schema, node)
    if "enum" in node:
        return next((v for v in node["enum"] if v is not None), None)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        if depth > 3:
            return {}
        return {
            name: _sample(schema, sub, depth + 1)
            for name, sub in node.get("properties", {}).items()
            if not sub.get("readOnly")
        }
    if kind == "array":
        return [_sample(schema, node.get("items", {}), depth + 1)]
    if kind == "integer":
        return max(1, node.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "string":
        return "sample"
    return "sample"


def _bodies(schema: dict, operation: dict) -> list[tuple[str, object]]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return [("no body", None), ("hostile body", {"\x00": "\ud800"})]
    base = _sample(schema, content["application/json"]["schema"])
    bodies: list[tuple[str, object]] = [
        ("plausible", base),
        ("list", []),
        ("string", "\ud800"),
        ("null", None),
        ("deep", _nested(DEEP)),
    ]
    if isinstance(base, dict):
        for name in base:
            for value in [*HOSTILE_VALUES, _nested(DEEP), {"a": _nested(DEEP)}]:
                bodies.append((f"{name}={_short(value)}", {**base, name: value}))
            if isinstance(base[name], list) and base[name] and isinstance(base[name][0], dict):
                for inner in base[name][0]:
                    for value in HOSTILE_VALUES:
                        item = {**base[name][0], inner: value}
                        bodies.append(
                            (f"{name}[0].{inner}={_short(value)}", {**base, name: [item]})
                        )
    return bodies


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


def _path_values(ids: dict) -> dict[str, list[str]]:
    return {name: [str(value), *HOSTILE_IDS] for name, value in ids.items()}


def _paths(path: str, ids: dict) -> list[str]:
    names = re.findall(r"{(\w+)}", path)
    values = _path_values(ids)
    real = path
    for name in names:
        real = real.replace("{" + name + "}", str(ids.get(name, 1)))
    variants = [real]
    for name in names:
        for value in values.get(name, ["1", *HOSTILE_IDS, "x"]):
            variant = path
            for other in names:
                variant = variant.replace(
                    "{" + other + "}", value if other == name else str(ids.get(other, 1))
                )
            variants.append(variant)
    return list(dict.fromkeys(variants))


def _send(client: APIClient, method: str, path: str, body, query=None):
    data = None if body is None else json.dumps(body).encode()
    return client.generic(
        method.upper(),
        path,
        data=data or b"",
        content_type="application/json",
        QUERY_STRING="&".join(f"{k}={v}" for k, v in (query or {}).items()),
    )


def _fuzz(client: APIClient, schema: dict, ids: dict, only=None) -> tuple[int, list[str]]:
    failures, sent = [], 0
    for path, operations in schema["paths"].items():
        if only and not any(word in path for word in only):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            queries = [
                {p["name"]: value}
                for p in operation.get("parameters", [])
                if p["in"] == "query"
                for value in HOSTILE_QUERY
            ]
            cases = [(url, "plausible", None, None) for url in _paths(path, ids)]
            real = _paths(path, ids)[0]
            cases += [(real, name, body, None) for name, body in _bodies(schema, operation)]
            cases += [(real, f"query {q}", None, q) for q in queries]
            for url, name, body, query in cases:
                sent += 1
                try:
                    response = _send(client, method, url, body, query)
                    status = response.status_code
                except Exception as error:  # the test client re-raises what a view raised
                    status, response = 500, error
                if status >= 500:
                    failures.append(f"{method.upper()} {url} [{name}]: {status} {response!r:.200}")
    return sent, failures


def test_no_operation_answers_hostile_input_with_a_5xx(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PICKWISE_LOGIN_FAILURES_PER_ADDRESS = 10**9
    settings.PICKWISE_LOGIN_FAILURES_PER_ACCOUNT = 10**9
    campaign = campaign_with_comparisons(prompts=3, overlap=2)
    gold_build(campaign=campaign, count=1)
    worker = annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=worker)
    admin = UserFactory(is_staff=True, is_superuser=True)
    ids = {
        "campaign_id": campaign.pk,
        "assignment_id": assignment.pk,
        "user_id": worker.pk,
        "export_id": 1,
        "job_id": 1,
        "import_id": 1,
        "name": "manifest.json",
    }
    schema = _schema()
    client = APIClient()
    client.force_authenticate(admin)
    sent, failures = _fuzz(client, schema, ids)

    as_annotator = APIClient()
    as_annotator.force_authenticate(worker)
    more, annotator_failures = _fuzz(
        as_annotator, schema, ids, only=("/next/", "/submit/", "/skip/", "/undo/", "campaigns/")
    )
    anonymous, anonymous_failures = _fuzz(APIClient(), schema, ids, only=("/auth/token/",))
    print(f"fuzz: {sent + more + anonymous} requests")
    failures += annotator_failures + anonymous_failures
    assert not failures, f"{len(failures)} of {sent + more + anonymous}:\n" + "\n".join(
        failures[:60]
    )
