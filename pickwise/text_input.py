"""What text the database can store, checked before it gets there.

PostgreSQL refuses a NUL character in text and jsonb, no database stores an unpaired UTF-16
surrogate (JSON's "\\ud800" escape decodes to one in Python; encoding it fails on SQLite too),
and a B-tree index entry holds at most about 2700 bytes, so an indexed text column needs a
limit in UTF-8 bytes, not characters. Serializers, forms, file importers and the JSON parser
all ask here, so every input path gives the same clear 400 instead of a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminTextareaWidget
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 64
# A prompt's text is in a unique B-tree index with its campaign (8 bytes and headers): 2400
# bytes leaves room under PostgreSQL's 2704-byte entry limit even when nothing compresses.
MAX_INDEXED_TEXT_BYTES = 2400

NUL_CHARACTER = "{field} contains a NUL character (\\u0000), which cannot be stored."
LONE_SURROGATE = (
    "{field} contains an unpaired surrogate (\\ud800-\\udfff), which is not valid text."
)
TOO_MANY_BYTES = "{field} is {size} bytes in UTF-8; at most {limit} bytes fit."
TOO_DEEP = "{field} is nested more than {limit} levels deep."
BODY = "The request body"

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str, *, field: str, max_bytes: int | None = None) -> str | None:
    """Why `value` cannot be stored, or None."""
    if "\x00" in value:
        return NUL_CHARACTER.format(field=field)
    if _SURROGATE.search(value):
        return LONE_SURROGATE.format(field=field)
    if max_bytes is not None:
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            return TOO_MANY_BYTES.format(field=field, size=size, limit=max_bytes)
    return None


def json_problem(value: Any, *, field: str, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a decoded JSON value (keys and strings at any depth) cannot be stored, or None.

    Walks with an explicit stack: a deep value must not exhaust Python's recursion limit.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item, field=field):
                return problem
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return TOO_DEEP.format(field=field, limit=max_depth)
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and (problem := text_problem(key, field=field)):
                        return problem
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def text_validate(value: str, *, field: str, max_bytes: int | None = None) -> None:
    """ValidationError (forms, models, serializers) when `value` cannot be stored."""
    if problem := text_problem(value, field=field, max_bytes=max_bytes):
        raise ValidationError(problem, code="invalid_text")


def json_validate(value: Any, *, field: str) -> None:
    if problem := json_problem(value, field=field):
        raise ValidationError(problem, code="invalid_text")


def record_problem(record: dict, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The first text cell of an imported row (CSV, JSON lines, parquet) that cannot be
    stored, named by its column."""
    for column, value in record.items():
        name = f"column {column!r}" if isinstance(column, str) else "a column"
        if isinstance(column, str) and (problem := text_problem(column, field="A column name")):
            return problem
        if isinstance(value, str | dict | list) and (
            problem := json_problem(value, field=name, max_depth=max_depth)
        ):
            return problem
    return None


class StorableJSONFormField(forms.JSONField):
    """A form's JSON field (the admin's) that refuses what json_problem refuses."""

    def validate(self, value):
        super().validate(value)
        json_validate(value, field=str(self.label or "The value"))

    def bound_data(self, data, initial):
        # Shown again in the form: what the user typed, not a decoded value that cannot be
        # rendered (a lone surrogate does not encode) or decoded at all (too deep).
        try:
            value = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        if not isinstance(value, InvalidJSONInput) and json_problem(value, field=""):
            return InvalidJSONInput(data)
        return value

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError(
                TOO_DEEP.format(field=str(self.label or "The value"), limit=MAX_JSON_DEPTH)
            ) from None


class StorableTextFormField(forms.CharField):
    """A form's text field that refuses lone surrogates besides NUL (which CharField refuses)."""

    def validate(self, value):
        super().validate(value)
        if value:
            text_validate(value, field=str(self.label or "The text"))


# ModelAdmin.formfield_overrides for admins that edit JSON or free text.
STORABLE_FORMFIELDS = {
    models.JSONField: {"form_class": StorableJSONFormField},
    models.TextField: {"form_class": StorableTextFormField, "widget": AdminTextareaWidget},
}


class StorableJSONParser(JSONParser):
    """DRF's JSON parser, refusing bodies nested too deep and text no database stores.

    Python's decoder raises RecursionError on deep nesting (a 500 before): caught here.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP.format(field=BODY, limit=MAX_JSON_DEPTH)) from None
        if problem := json_problem(data, field=BODY):
            raise ParseError(problem)
        return data


def json_loads_storable(text: str | bytes, *, field: str) -> Any:
    """json.loads for uploaded files: ValueError with a clear message for deep nesting or
    text that cannot be stored."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(TOO_DEEP.format(field=field, limit=MAX_JSON_DEPTH)) from None
    if problem := json_problem(data, field=field):
        raise ValueError(problem)
    return data
