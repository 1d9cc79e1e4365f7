"""One length rule for prompts on every path in, held by the database too; and the CLIP
token estimate behind the page's truncation warning."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from annotate.models import Prompt
from annotate.prompt_length import (
    CLIP_MAX_TOKENS,
    MAX_PROMPT_CHARS,
    clip_tokens_estimate,
    clip_truncates,
)
from annotate.services.image_imports import messages as import_messages
from annotate.services.prompts import (
    NEGATIVE_TOO_LONG,
    TEXT_TOO_LONG,
    prompt_rows_from_payload,
    prompts_add,
)
from pickwise.errors import ApplicationError
from tests.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

LONGEST = "x" * MAX_PROMPT_CHARS
TOO_LONG = "x" * (MAX_PROMPT_CHARS + 1)


def test_the_service_takes_the_longest_prompt_and_refuses_one_more_character():
    campaign = CampaignFactory()
    rows = prompt_rows_from_payload(prompts=[LONGEST, f"  {LONGEST[:-1]}y  "])
    assert prompts_add(campaign=campaign, rows=rows).created == 2
    with pytest.raises(ApplicationError) as error:
        prompt_rows_from_payload(
            prompts=["fine", TOO_LONG, {"text": "ok", "negative_prompt": TOO_LONG}]
        )
    assert error.value.extra["errors"] == [
        {"line": 2, "error": TEXT_TOO_LONG.format(limit=MAX_PROMPT_CHARS)},
        {"line": 3, "error": NEGATIVE_TOO_LONG.format(limit=MAX_PROMPT_CHARS)},
    ]


@pytest.mark.parametrize("field", ["text", "negative_prompt"])
def test_the_database_refuses_a_prompt_over_the_limit_from_any_writer(field):
    campaign = CampaignFactory()
    values = {"text": "a cat", field: TOO_LONG}
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.create(campaign=campaign, **values)
    with pytest.raises(IntegrityError), transaction.atomic():
        Prompt.objects.bulk_create([Prompt(campaign=campaign, **values)])
    Prompt.objects.create(campaign=campaign, **{**values, field: LONGEST})


def test_the_django_admin_form_applies_the_same_rule(client):
    campaign = CampaignFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    form = {"campaign": campaign.pk, "text": TOO_LONG, "negative_prompt": "", "meta": "{}"}
    response = client.post("/admin/annotate/prompt/add/", form)
    assert response.status_code == 200
    assert f"at most {MAX_PROMPT_CHARS} characters" in response.content.decode()
    assert not Prompt.objects.exists()
    assert client.post("/admin/annotate/prompt/add/", {**form, "text": LONGEST}).status_code == 302


def test_the_import_command_applies_the_same_rule(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "p.txt"
    path.write_text(f"a cat\n{TOO_LONG}\n")
    with pytest.raises(CommandError) as error:
        call_command("import_prompts", "--campaign", campaign.slug, str(path), stdout=io.StringIO())
    assert "line 2" in str(error.value)
    assert TEXT_TOO_LONG.format(limit=MAX_PROMPT_CHARS) in str(error.value)
    assert not Prompt.objects.exists()


def test_image_imports_name_the_same_limit():
    assert f"at most {MAX_PROMPT_CHARS} characters" in import_messages.BAD_PROMPT


def test_the_clip_estimate_counts_words_digits_and_punctuation_with_markers():
    assert clip_tokens_estimate("") == 2
    assert clip_tokens_estimate("a red fox") == 5
    assert clip_tokens_estimate("a cat, 1024 px!") == 2 + 2 + 1 + 4 + 1 + 1
    # A long word costs more than a short one: byte-pair merges stop at common pieces.
    assert clip_tokens_estimate("photorealistic") == 2 + 3


def test_the_clip_warning_starts_past_seventy_five_words_of_text():
    short = " ".join(["cat"] * (CLIP_MAX_TOKENS - 2))
    assert not clip_truncates(short)
    assert clip_truncates(short + " dog")
