"""The exports page: formats from the registry, QC options, start, live list, files."""

import hashlib
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils.html import escape

from annotate.services.campaigns import membership_set
from exports.combined import FORMAT_NOT_COMBINED
from exports.formats import EXPORT_FORMATS
from exports.models import Export
from exports.services import EMPTY_BEFORE_START, export_build
from frontend.export_views import load_dataset_lines
from tests.exports.helpers import bulk_judge, prefer_models
from tests.factories import annotator, campaign_with_comparisons, user_as
from tests.training.jobs_support import finished_export

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def judged():
    campaign = campaign_with_comparisons(prompts=4, models=("model-a", "model-b"))
    bulk_judge(
        campaign, [annotator(campaign), annotator(campaign)], prefer_models("model-a", "model-b")
    )
    return campaign


def url(campaign, name: str = "") -> str:
    return reverse(f"frontend:campaign-exports{'-' + name if name else ''}", args=[campaign.pk])


def start_form(**extra) -> dict:
    return {
        "format": "pickapic",
        "criterion": "overall",
        "states": ["active", "warned", "qualifying"],
        "validation": 0.0,
        "test": 0.25,
        "seed": 7,
        "consensus": "dawid_skene",
        "contested_below": 0.9,
        **extra,
    }


def test_the_registry_names_every_export_format_once():
    assert sorted(fmt.key for fmt in EXPORT_FORMATS) == sorted(Export.Format.values)


def test_each_format_is_offered_with_what_reads_it(client, judged):
    client.force_login(user_as(judged, "researcher"))
    html = client.get(url(judged)).content.decode()
    for fmt in EXPORT_FORMATS:
        assert f'value="{fmt.key}"' in html
        assert escape(fmt.read_by) in html


def test_a_researcher_starts_an_export_with_the_chosen_policy_and_splits(
    client, judged, django_capture_on_commit_callbacks
):
    client.force_login(user_as(judged, "researcher"))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            url(judged, "start"),
            start_form(include_gold="on", consensus="majority", contested_below=0.8),
        )
    assert response.status_code == 302 and response["Location"] == url(judged)
    assert len(callbacks) == 1  # the build is queued once committed
    export = Export.objects.get()
    assert (export.format, export.seed, export.status) == ("pickapic", 7, "pending")
    # A training format leaves gold out whatever the form asked.
    assert export.policy == {
        "states": ["qualifying", "active", "warned"],
        "exclude_gold": True,
        "exclude_repeats": True,
        "consensus": "majority",
        "contested_below": 0.8,
    }
    assert (export.splits["validation"], export.splits["test"]) == (0.0, 0.25)
    html = client.get(url(judged, "list")).content.decode()
    assert 'hx-trigger="every 3s"' in html and 'data-status="pending"' in html


def test_jsonl_keeps_gold_and_repeats_when_asked(client, judged):
    client.force_login(user_as(judged, "admin"))
    form = start_form(format="jsonl", include_gold="on", include_repeats="on")
    assert client.post(url(judged, "start"), form).status_code == 302
    policy = Export.objects.get().policy
    assert (policy["exclude_gold"], policy["exclude_repeats"]) == (False, False)


def test_a_finished_export_lists_every_file_with_size_digest_link_and_load_line(client):
    export = finished_export(prompts=4)
    client.force_login(user_as(export.campaign, "researcher"))
    html = client.get(url(export.campaign, "list")).content.decode()
    assert "hx-trigger" not in html  # nothing being built: no polling
    names = [entry["name"] for entry in export.manifest["files"]]
    assert any(name.endswith(".parquet") for name in names) and "README.md" in names
    for entry in export.manifest["files"]:
        path = Path(export.folder) / entry["name"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["sha256"] in html
        assert reverse("exports:file", args=[export.pk, entry["name"]]) in html
    folder = f"{export.campaign.slug}-pickapic-v1"
    assert load_dataset_lines(export) == [
        f'load_dataset("{folder}")',
        f'load_dataset("{folder}", "dpo")',
    ]
    assert f"load_dataset(&quot;{folder}&quot;)" in html and 'data-copy="load-' in html
    assert reverse("frontend:training-start", args=[export.pk]) in html
    # The link downloads the file the digest names.
    first = export.manifest["files"][0]
    response = client.get(reverse("exports:file", args=[export.pk, first["name"]]))
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == first["sha256"]


def test_the_list_stops_polling_and_shows_files_once_the_build_ends(client, judged):
    client.force_login(user_as(judged, "researcher"))
    client.post(url(judged, "start"), start_form())
    assert 'hx-trigger="every 3s"' in client.get(url(judged, "list")).content.decode()
    export_build(export=Export.objects.get())
    html = client.get(url(judged, "list")).content.decode()
    assert "hx-trigger" not in html and 'data-status="finished"' in html and "README.md" in html


def test_an_export_with_nothing_to_export_says_why(client):
    campaign = campaign_with_comparisons(prompts=2)
    client.force_login(user_as(campaign, "researcher"))
    response = client.post(url(campaign, "start"), start_form())
    assert response.status_code == 400
    expected = EMPTY_BEFORE_START.format(slug=campaign.slug, states="qualifying, active, warned")
    assert escape(expected) in response.content.decode()
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "csv"}, "Select a valid choice. csv is not one of the available choices."),
        ({"criterion": "beauty"}, "Select a valid choice. beauty is not one of the available"),
        ({"states": ["blocked"]}, "Select a valid choice. blocked is not one of the available"),
        ({"states": []}, "This field is required."),
        ({"test": 0.9}, "Ensure this value is less than or equal to 0.5."),
        ({"seed": -1}, "Ensure this value is greater than or equal to 0."),
        ({"seed": "x" * 5000}, "Enter a whole number."),
        ({"consensus": "vote"}, "Select a valid choice. vote is not one of the available"),
        ({"contested_below": 0.3}, "Ensure this value is greater than or equal to 0.5."),
    ],
)
def test_bad_options_are_shown_and_export_nothing(client, judged, change, message):
    client.force_login(user_as(judged, "researcher"))
    response = client.post(url(judged, "start"), start_form(**change))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Export.objects.exists()


def test_starting_twice_makes_two_versions(client, judged):
    client.force_login(user_as(judged, "researcher"))
    client.post(url(judged, "start"), start_form())
    client.post(url(judged, "start"), start_form())
    assert sorted(Export.objects.values_list("version", flat=True)) == [1, 2]


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_annotators_and_outsiders_see_no_exports(client, judged, who, status):
    client.force_login(user_as(judged, who))
    for name in ("", "list"):
        assert client.get(url(judged, name)).status_code == status
    assert client.post(url(judged, "start"), start_form()).status_code == status
    assert not Export.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in_and_methods_are_checked(client, judged):
    response = client.get(url(judged))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(user_as(judged, "researcher"))
    assert client.get(url(judged, "start")).status_code == 405
    assert client.post(url(judged)).status_code == 405


# Several campaigns, one dataset ---------------------------------------------------------------


def test_the_page_offers_the_other_campaigns_the_user_reads_and_combines_them(client, judged):
    user = user_as(judged, "researcher")
    other = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"), slug="release-2")
    bulk_judge(other, [annotator(other)], prefer_models("model-a", "model-b"))
    membership_set(campaign=other, user=user, role="researcher")
    hidden = campaign_with_comparisons(prompts=1, slug="not-mine")
    ranking = campaign_with_comparisons(prompts=1, kind="ranking", k=3, slug="ranking-kind")
    membership_set(campaign=ranking, user=user, role="researcher")
    client.force_login(user)

    html = client.get(url(judged)).content.decode()
    assert 'name="also"' in html and "release-2" in html
    assert hidden.slug not in html and ranking.slug not in html  # not theirs; another kind
    response = client.post(url(judged, "start"), start_form(also=[other.pk]))
    assert response.status_code == 302
    export = Export.objects.get()
    assert (export.campaign, export.sources) == (judged, [judged.pk, other.pk])
    assert "2 campaigns combined" in client.get(url(judged, "list")).content.decode()


def test_combining_a_campaign_not_offered_or_a_format_that_does_not_combine_is_refused(
    client, judged
):
    user = user_as(judged, "researcher")
    other = campaign_with_comparisons(prompts=2, models=("model-a", "model-b"))
    bulk_judge(other, [annotator(other)], prefer_models("model-a", "model-b"))
    client.force_login(user)

    refused = client.post(url(judged, "start"), start_form(also=[other.pk]))
    assert refused.status_code == 400  # not a campaign they read: not a choice
    membership_set(campaign=other, user=user, role="researcher")
    jsonl = client.post(url(judged, "start"), start_form(format="jsonl", also=[other.pk]))
    assert jsonl.status_code == 400
    assert escape(FORMAT_NOT_COMBINED.format(format="jsonl")) in jsonl.content.decode()
    assert not Export.objects.exists()
