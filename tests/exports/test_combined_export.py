"""Several campaigns, one dataset: compatibility, merged prompts and pairs, the Pick-a-Pic
checks across all of them, and the API and command line."""

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Features, load_dataset
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from annotate.models import Judgment, Membership, Prompt
from annotate.services.campaigns import membership_set
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.images import image_create
from exports.combined import (
    CRITERION_DIFFERS,
    FORMAT_NOT_COMBINED,
    KINDS_DIFFER,
    SAME_CAMPAIGN_TWICE,
)
from exports.models import Export
from exports.writers.manifest import file_digest
from pickwise.errors import ApplicationError
from tests.exports.helpers import build, bulk_judge, parquet_rows, prefer_models
from tests.exports.test_pickapic_export import EXPECTED_TYPES, SPLITS
from tests.factories import (
    PromptFactory,
    UserFactory,
    add_images,
    annotator,
    campaign_with_comparisons,
)

pytestmark = pytest.mark.django_db
ORDER = ("model-a", "model-b")


def copy_prompt(prompt: Prompt, campaign) -> Prompt:
    """The same prompt text and the same image files (new rows) in another campaign."""
    copy = PromptFactory(campaign=campaign, text=prompt.text)
    for image in prompt.images.order_by("id"):
        with default_storage.open(image.file.name, "rb") as handle:
            image_create(prompt=copy, data=handle.read(), model_name=image.model_name)
    return copy


@pytest.fixture
def releases(db):
    """Two releases' campaigns. They share one prompt with the very same pair of images; the
    rater `both` judges in both, `first` only in release 1, `second` only in release 2."""
    one = campaign_with_comparisons(prompts=5, models=ORDER, slug="release-1")
    two = campaign_with_comparisons(prompts=0, models=ORDER, slug="release-2")
    for _ in range(4):
        add_images(PromptFactory(campaign=two), models=list(ORDER))
    shared = one.prompts.order_by("id").first()
    copy_prompt(shared, two)
    comparisons_build_for_campaign(campaign=two)
    for campaign, names in ((one, ["both", "first"]), (two, ["both", "second"])):
        raters = [annotator(campaign, username=name) for name in names]
        bulk_judge(campaign, raters, prefer_models(*ORDER))
    return one, two, shared


def combined(one, two, **options) -> Export:
    return build(one, also=[two], **options)


def pickapic_rows(export: Export) -> list[dict]:
    """Rows of the train, validation and test splits (the *_unique ones repeat some)."""
    return [
        row
        for split in ("train", "validation", "test")
        for row in parquet_rows(export.folder, f"data/{split}-*.parquet")
    ]


def test_it_loads_with_the_pickapic_features_and_prompt_disjoint_splits(releases, tmp_path):
    one, two, _shared = releases
    export = combined(one, two)
    data = load_dataset(export.folder, cache_dir=str(tmp_path / "hf"))

    assert list(data) == SPLITS
    expected = Features.from_dict(
        {name: {"dtype": dtype, "_type": "Value"} for name, dtype in EXPECTED_TYPES.items()}
    )
    assert all(data[split].features == expected for split in SPLITS)
    captions = {split: set(data[split]["caption"]) for split in SPLITS}
    assert not captions["train"] & captions["validation"]
    assert not captions["train"] & captions["test"]
    assert not captions["validation"] & captions["test"]
    assert captions["validation_unique"] == captions["validation"]
    assert captions["test_unique"] == captions["test"]
    for split in ("validation_unique", "test_unique"):
        assert len(data[split]) == len(captions[split])  # the shared prompt counts once
    for split in ("train", "validation", "test"):
        per_caption = Counter(data[split]["caption"])
        assert all(r["num_example_per_prompt"] == per_caption[r["caption"]] for r in data[split])
    texts = set(Prompt.objects.filter(campaign__in=[one, two]).values_list("text", flat=True))
    assert set().union(*captions.values()) == texts  # nine texts: 5 + 5 - 1 shared


def test_a_recurring_pair_is_one_pair_and_a_raters_second_look_is_a_repeat(releases):
    one, two, shared = releases
    export = combined(one, two)
    rows = pickapic_rows(export)

    # 5 + 5 comparisons, two raters each, less `both`'s second judgment of the shared pair.
    assert len(rows) == 19
    first_uids = {str(uid) for uid in shared.images.values_list("uid", flat=True)}
    copy = Prompt.objects.get(campaign=two, text=shared.text)
    copy_uids = {str(uid) for uid in copy.images.values_list("uid", flat=True)}
    on_shared = [r for r in rows if r["caption"] == shared.text]
    assert len(on_shared) == 3  # both and first in release 1, second in release 2
    assert all({r["image_0_uid"], r["image_1_uid"]} == first_uids for r in on_shared)
    exported = {uid for r in rows for uid in (r["image_0_uid"], r["image_1_uid"])}
    assert not exported & copy_uids
    # The winner is still the one each rater chose, through the translated answers.
    assert all(r["model_0" if r["label_0"] == 1.0 else "model_1"] == "model-a" for r in rows)
    counts = export.manifest["counts"]
    assert counts["excluded"] == {"repeat": 1}
    assert counts["combined"] == {
        "campaigns": 2,
        "pairs_merged": 1,
        "prompts_merged": 1,
        "repeats_across_campaigns": 1,
    }


def test_the_manifest_records_every_campaign_with_its_qc_policy(releases):
    one, two, _shared = releases
    two.qc_policy = {"min_gold_accuracy": 0.9}
    two.save(update_fields=["qc_policy"])
    export = combined(one, two)

    assert export.sources == [one.pk, two.pk]
    listed = export.manifest["campaigns"]
    assert [c["slug"] for c in listed] == ["release-1", "release-2"]
    assert [c["qc_policy"] for c in listed] == [one.qc_policy, {"min_gold_accuracy": 0.9}]
    folder = Path(export.folder)
    for entry in export.manifest["files"]:
        assert file_digest(folder / entry["name"]) == entry["sha256"]
    card = (folder / "README.md").read_text()
    assert '"release-1"' in card and '"release-2"' in card


def test_each_campaigns_gate_states_apply_to_its_own_judgments(releases):
    one, two, _shared = releases
    # `both` is blocked in release 2 only: their release-1 judgments stay.
    Membership.objects.filter(campaign=two, user__username="both").update(gate_state="blocked")
    rows = pickapic_rows(combined(one, two))

    keys = dict(
        Membership.objects.filter(user__username="both").values_list("campaign", "rater_key")
    )
    assert sum(r["user_id"] == keys[one.pk] for r in rows) == 5
    assert not [r for r in rows if r["user_id"] == keys[two.pk]]


def test_image_preference_combines_too(releases, tmp_path):
    one, two, _shared = releases
    export = combined(one, two, format="image_preference")
    data = load_dataset(export.folder, cache_dir=str(tmp_path / "hf"))

    rows = [row for split in data.values() for row in split]
    assert len(rows) == 19
    assert {r["chosen_model"] for r in rows} == {"model-a"}
    judgments = set(Judgment.objects.values_list("id", flat=True))
    assert {r["judgment_id"] for r in rows} <= judgments


KIND = KINDS_DIFFER.format(
    slug="release-2", kind="ranking", k=3, first="release-1", first_kind="pairwise", first_k=2
)
ASKED = CRITERION_DIFFERS.format(criterion="overall", slug="release-2", first="release-1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "ranking", "k": 3}, KIND),
        ({"criteria": [{"key": "overall", "question": "?", "allow_tie": False}]}, ASKED),
    ],
    ids=["kind", "answers"],
)
def test_incompatible_campaigns_are_refused_with_the_reason(releases, change, message):
    one, two, _shared = releases
    for field, value in change.items():
        setattr(two, field, value)
    two.save(update_fields=list(change))

    with pytest.raises(ApplicationError) as error:
        combined(one, two)
    assert (error.value.code, error.value.message) == ("incompatible", message)
    assert not Export.objects.exists()


def test_a_missing_criterion_is_refused(releases):
    one, two, _shared = releases
    two.criteria = [{"key": "aesthetics", "question": "Nicer?", "allow_tie": True}]
    two.save(update_fields=["criteria"])

    with pytest.raises(ApplicationError) as error:
        combined(one, two)
    assert error.value.message == (
        "Campaign 'release-2' has no criterion 'overall'; it has: aesthetics."
    )


def test_other_formats_and_repeated_campaigns_are_refused(releases):
    one, two, _shared = releases
    with pytest.raises(ApplicationError) as error:
        combined(one, two, format="jsonl")
    assert error.value.message == FORMAT_NOT_COMBINED.format(format="jsonl")
    with pytest.raises(ApplicationError) as error:
        build(one, also=[two, one])
    assert error.value.message == SAME_CAMPAIGN_TWICE.format(slug="release-1")


# The API and the command line ---------------------------------------------------------------


def researcher_of(*campaigns):
    user = UserFactory()
    for campaign in campaigns:
        membership_set(campaign=campaign, user=user, role=Membership.Role.RESEARCHER)
    return user


def test_the_api_creates_a_combined_export_and_only_readers_of_all_may_see_it(releases, api_client):
    one, two, _shared = releases
    api_client.force_authenticate(researcher_of(one, two))
    response = api_client.post(
        "/api/exports/", {"campaigns": [one.pk, two.pk], "format": "pickapic"}
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["campaign"], body["sources"]) == (one.pk, [one.pk, two.pk])

    api_client.force_authenticate(researcher_of(one))
    assert api_client.get(f"/api/exports/{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"format": "pickapic"},
        {"campaign": 1, "campaigns": [1, 2], "format": "pickapic"},
        {"campaigns": [], "format": "pickapic"},
        {"campaigns": ["x"], "format": "pickapic"},
        {"campaigns": list(range(1, 30)), "format": "pickapic"},
    ],
    ids=["neither", "both", "empty", "not-ids", "too-many"],
)
def test_the_api_refuses_malformed_campaign_lists(releases, api_client, body):
    one, two, _shared = releases
    api_client.force_authenticate(researcher_of(one, two))

    response = api_client.post("/api/exports/", body)
    assert response.status_code == 400
    assert not Export.objects.exists()


def test_the_api_hides_a_campaign_the_user_cannot_read(releases, api_client):
    one, two, _shared = releases
    api_client.force_authenticate(researcher_of(one))

    response = api_client.post(
        "/api/exports/", {"campaigns": [one.pk, two.pk], "format": "pickapic"}
    )
    assert response.status_code == 404
    assert not Export.objects.exists()


def test_the_api_says_why_campaigns_do_not_combine(releases, api_client):
    one, two, _shared = releases
    api_client.force_authenticate(researcher_of(one, two))

    response = api_client.post("/api/exports/", {"campaigns": [one.pk, two.pk], "format": "ranked"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": FORMAT_NOT_COMBINED.format(format="ranked"),
        "code": "incompatible",
    }


def test_the_command_combines_campaigns_given_several_times(releases, tmp_path):
    out = tmp_path / "combined"
    stdout = io.StringIO()
    call_command(
        "export_dataset",
        "--campaign=release-1",
        "--campaign=release-2",
        f"--out={out}",
        stdout=stdout,
    )

    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["slug"] for c in manifest["campaigns"]] == ["release-1", "release-2"]
    assert manifest["counts"]["rows"]["default"]["train"] > 0
    assert "of release-1, release-2 into" in stdout.getvalue()
    with pytest.raises(CommandError, match="No campaign with slug 'nope'"):
        call_command(
            "export_dataset", "--campaign=release-1", "--campaign=nope", f"--out={tmp_path / 'x'}"
        )
