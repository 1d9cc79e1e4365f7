"""The prompts page: paste or upload, line-numbered errors, the length rule, the CLIP warning."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Membership, Prompt
from annotate.prompt_length import MAX_PROMPT_CHARS
from annotate.services.campaigns import membership_set
from annotate.services.prompts import TEXT_TOO_LONG
from tests.factories import CampaignFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


def url(name, campaign):
    return reverse(f"frontend:{name}", args=[campaign.pk])


def html(response) -> str:
    return response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')


def admin_of(campaign):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=Membership.Role.ADMIN)
    return user


def texts(campaign) -> list[str]:
    return list(Prompt.objects.filter(campaign=campaign).values_list("text", flat=True))


def test_the_prompts_page_is_for_campaign_admins(client):
    campaign = CampaignFactory()
    PromptFactory(campaign=campaign, text="a secret prompt")
    page = url("campaign-prompts", campaign)
    assert client.get(page).status_code == 302
    client.force_login(UserFactory())
    assert client.get(page).status_code == 404
    for role in (Membership.Role.ANNOTATOR, Membership.Role.RESEARCHER):
        user = UserFactory()
        membership_set(campaign=campaign, user=user, role=role)
        client.force_login(user)
        assert client.get(page).status_code == 403
        assert (
            client.post(url("campaign-prompts-paste", campaign), {"text": "x"}).status_code == 403
        )
        upload = SimpleUploadedFile("p.txt", b"y\n")
        response = client.post(url("campaign-prompts-upload", campaign), {"file": upload})
        assert response.status_code == 403
    assert texts(campaign) == ["a secret prompt"]
    client.force_login(admin_of(campaign))
    response = client.get(page)
    assert response.status_code == 200
    assert f"at most {MAX_PROMPT_CHARS} characters" in html(response)
    assert "a secret prompt" in html(response)
    assert client.get(url("campaign-prompts-paste", campaign)).status_code == 405


def test_pasted_lines_become_prompts_and_duplicates_are_skipped(client):
    campaign = CampaignFactory()
    PromptFactory(campaign=campaign, text="a red fox")
    client.force_login(admin_of(campaign))
    response = client.post(
        url("campaign-prompts-paste", campaign),
        {"text": "a red fox\n\n  a paper boat  \na paper boat\n"},
        follow=True,
    )
    assert "1 prompts added; 2 were there already." in html(response)
    assert sorted(texts(campaign)) == ["a paper boat", "a red fox"]


def test_bad_lines_are_listed_by_number_and_nothing_is_added(client):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    long_line = "y" * (MAX_PROMPT_CHARS + 1)
    response = client.post(
        url("campaign-prompts-paste", campaign), {"text": f"fine\n{long_line}\nalso fine"}
    )
    assert response.status_code == 400
    assert f"line 2: {TEXT_TOO_LONG.format(limit=MAX_PROMPT_CHARS)}" in html(response)
    assert texts(campaign) == []


@pytest.mark.parametrize(
    ("name", "content", "fmt", "expected"),
    [
        ("p.txt", b"a cat\na dog\n", "", ["a cat", "a dog"]),
        ("p.csv", b"text,negative_prompt,source\na cat,blurry,x\n", "", ["a cat"]),
        ("p.jsonl", b'{"text": "a cat"}\n{"text": "a dog"}\n', "", ["a cat", "a dog"]),
        ("prompts", b'{"text": "a cow"}\n', "jsonl", ["a cow"]),
    ],
)
def test_uploaded_files_are_read_by_their_format(client, name, content, fmt, expected):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    upload = SimpleUploadedFile(name, content)
    response = client.post(
        url("campaign-prompts-upload", campaign), {"file": upload, "format": fmt}
    )
    assert response.status_code == 302
    assert sorted(texts(campaign)) == expected


def test_a_bad_jsonl_upload_names_its_lines(client):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    upload = SimpleUploadedFile("p.jsonl", b'{"text": "ok"}\nnot json\n{"text": ""}\n')
    response = client.post(url("campaign-prompts-upload", campaign), {"file": upload})
    assert response.status_code == 400
    page = html(response)
    assert "2 bad row(s); nothing was imported." in page
    assert "line 2: Invalid JSON" in page
    assert "line 3: 'text' must be a non-empty string." in page
    assert texts(campaign) == []


@pytest.mark.parametrize(
    ("name", "content", "fmt", "status", "sentence"),
    [
        ("p.exe", b"MZ", "", 400, "Unknown prompt file format 'exe'"),
        ("p.txt", b"\xff\xfe\x00bad", "", 400, "The file is not UTF-8 text."),
        ("p.csv", b"prompt\na cat\n", "", 400, "The CSV file needs a 'text' column."),
        ("p.txt", b"", "", 400, "The submitted file is empty."),
        ("noextension", b"a cat", "", 400, "Say the file's format"),
        ("p.txt", b"a cat", "xml", 400, "Select a valid choice."),
    ],
)
def test_malformed_uploads_are_refused_with_a_sentence(
    client, name, content, fmt, status, sentence
):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    upload = SimpleUploadedFile(name, content)
    response = client.post(
        url("campaign-prompts-upload", campaign), {"file": upload, "format": fmt}
    )
    assert response.status_code == status
    assert sentence in html(response)
    assert texts(campaign) == []


def test_an_oversized_upload_is_refused(client, settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 100
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    upload = SimpleUploadedFile("p.txt", b"a cat\n" * 50)
    response = client.post(url("campaign-prompts-upload", campaign), {"file": upload})
    assert response.status_code == 413
    assert "The file has 300 bytes; the limit is 100." in html(response)
    assert texts(campaign) == []


def test_too_many_prompts_at_once_are_refused(client, settings):
    settings.PICKWISE_MAX_PROMPTS_PER_IMPORT = 3
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    response = client.post(url("campaign-prompts-paste", campaign), {"text": "a\nb\nc\nd"})
    assert response.status_code == 400
    assert "An import takes at most 3 prompts; this one has 4." in html(response)


def test_prompts_a_clip_encoder_would_cut_are_marked(client):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))
    long_prompt = " ".join(["a small red house by the sea"] * 12)
    response = client.post(
        url("campaign-prompts-paste", campaign), {"text": f"a cat\n{long_prompt}"}, follow=True
    )
    page = html(response)
    assert "1 of them probably run past the 77 tokens" in page
    assert page.count("cut by CLIP") == 1
