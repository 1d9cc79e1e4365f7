import json

import pytest

from annotate.models import Prompt
from annotate.services import prompts as prompt_service
from annotate.services.prompts import prompt_rows_parse, prompts_add
from pickwise.errors import ApplicationError
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def _parse_refused(data: bytes, fmt: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as error:
        prompt_rows_parse(data=data, fmt=fmt)
    return error.value


def test_a_txt_file_gives_one_prompt_per_non_empty_line():
    rows = prompt_rows_parse(data=b"a red cube\n\n  a blue ball  \n", fmt="txt")
    assert [(r.line, r.text) for r in rows] == [(1, "a red cube"), (3, "a blue ball")]


def test_a_csv_file_reads_text_negative_prompt_and_keeps_other_columns_as_meta():
    data = b'text,negative_prompt,source\n"a cat, sitting",blurry,set-a\na dog,,set-b\n'
    rows = prompt_rows_parse(data=data, fmt="csv")
    assert [(r.line, r.text, r.negative_prompt, r.meta) for r in rows] == [
        (2, "a cat, sitting", "blurry", {"source": "set-a"}),
        (3, "a dog", "", {"source": "set-b"}),
    ]


def test_a_json_list_takes_strings_and_objects():
    data = json.dumps(["a cat", {"text": "a dog", "meta": {"id": 4}}]).encode()
    rows = prompt_rows_parse(data=data, fmt="json")
    assert [(r.text, r.meta) for r in rows] == [("a cat", {}), ("a dog", {"id": 4})]


def test_a_jsonl_file_gives_one_prompt_per_line():
    data = b'{"text": "a cat"}\n\n"a dog"\n'
    rows = prompt_rows_parse(data=data, fmt="jsonl")
    assert [(r.line, r.text) for r in rows] == [(1, "a cat"), (3, "a dog")]


def test_a_csv_without_a_text_column_is_refused():
    error = _parse_refused(b"prompt,meta\na cat,x\n", "csv")
    assert (error.code, error.message) == ("invalid_file", prompt_service.CSV_NEEDS_TEXT)


def test_invalid_jsonl_lines_are_reported_with_their_numbers():
    data = b'{"text": "fine"}\n{"text": \n{"text": ""}\n[1, 2]\n'
    error = _parse_refused(data, "jsonl")
    assert error.code == "invalid_rows"
    assert error.message == prompt_service.BAD_ROWS.format(count=3)
    lines = [(e["line"], e["error"]) for e in error.extra["errors"]]
    assert lines[0][0] == 2 and lines[0][1].startswith("Invalid JSON")
    assert lines[1:] == [
        (3, "'text' must be a non-empty string."),
        (4, "Expected an object with a 'text' field or a string."),
    ]


def test_a_broken_json_file_names_the_line():
    error = _parse_refused(b'[\n"a cat",\n"a dog"\n', "json")
    assert error.code == "invalid_file"
    assert error.message.startswith("Invalid JSON at line 4")


def test_a_prompt_over_the_length_limit_is_refused():
    error = _parse_refused(("x" * 2001).encode(), "txt")
    assert error.extra["errors"] == [{"line": 1, "error": "'text' is longer than 2000 characters."}]


def test_unknown_formats_and_non_utf8_files_are_refused():
    assert _parse_refused(b"a cat", "xlsx").code == "unknown_format"
    assert _parse_refused(b"\xff\xfe\x00bad", "txt").message == prompt_service.NOT_UTF8


def test_adding_the_same_prompts_twice_doubles_nothing():
    campaign = CampaignFactory()
    rows = prompt_rows_parse(data=b"a cat\na dog\na cat\n", fmt="txt")
    first = prompts_add(campaign=campaign, rows=rows)
    again = prompts_add(campaign=campaign, rows=rows)
    assert first.as_dict() == {"created": 2, "existing": 1}
    assert again.as_dict() == {"created": 0, "existing": 3}
    assert Prompt.objects.filter(campaign=campaign).count() == 2


def test_it_refuses_more_prompts_than_the_limit_and_adds_none(settings):
    settings.PICKWISE_MAX_PROMPTS_PER_IMPORT = 2
    rows = prompt_rows_parse(data=b"a\nb\nc\n", fmt="txt")
    with pytest.raises(ApplicationError) as error:
        prompts_add(campaign=CampaignFactory(), rows=rows)
    assert error.value.message == prompt_service.TOO_MANY_PROMPTS.format(limit=2, count=3)
    assert not Prompt.objects.exists()
