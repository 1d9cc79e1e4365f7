"""The Pick-a-Pic rows themselves, checked against the judgments they come from: which
judgments give rows, each row's values, the per-prompt counts, the `*_unique`
representatives and the tie-free config, for pairwise and ranking campaigns."""

from collections import defaultdict
from datetime import UTC
from itertools import combinations

import pytest

from annotate.models import ComparisonImage, Judgment, Membership
from exports.pairs import PAIR_ID_STRIDE
from tests.exports.helpers import build, judge_all, model_of, parquet_rows
from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db
MAIN = ("train", "validation", "test")
# Every prompt but one in validation or test, so most prompts have a *_unique row.
WIDE = {"validation": 0.5, "test": 0.5, "max_prompts": 100}


def rows_of(export, config: str = "data", splits=MAIN) -> dict[str, list[dict]]:
    return {split: parquet_rows(export.folder, f"{config}/{split}-*.parquet") for split in splits}


def canonical_uids(comparison_id: int) -> list[str]:
    return [
        str(uid)
        for uid in ComparisonImage.objects.filter(comparison_id=comparison_id)
        .order_by("slot")
        .values_list("image__uid", flat=True)
    ]


def expected_pairs(judgment: Judgment) -> list[tuple[int, str, str, float]]:
    """(ranking id, uid a, uid b, label of a) per pair of a judgment, from its stored answer:
    a winner uid or "tie", or tiers best first."""
    uids = canonical_uids(judgment.comparison_id)
    answer = judgment.answers["overall"]
    if isinstance(answer, str):
        tier = {uids[0]: 1, uids[1]: 1} if answer == "tie" else {answer: 0}
        rank = {uid: tier.get(uid, 1) for uid in uids}
    else:
        rank = {uid: position for position, tier in enumerate(answer) for uid in tier}
    pairs = []
    for index, (a, b) in enumerate(combinations(uids, 2)):
        label = 1.0 if rank[a] < rank[b] else 0.0 if rank[a] > rank[b] else 0.5
        pairs.append((judgment.pk * PAIR_ID_STRIDE + index, a, b, label))
    return pairs


def kept_judgments(campaign) -> list[Judgment]:
    """What the default policy keeps, read straight from the tables."""
    states = {m.user_id: m.gate_state for m in Membership.objects.filter(campaign=campaign)}
    return [
        j
        for j in Judgment.objects.filter(campaign=campaign).order_by("id")
        if states.get(j.annotator_id) in ("active", "warned")
        and not (j.excluded or j.is_gold or j.is_repeat)
        and j.answers.get("overall") not in (None, "both_bad")
    ]


def check_rows_against_judgments(campaign, export) -> dict[int, list[tuple]]:
    """Every default row is one pair of one kept judgment, with the values that judgment
    gives, and every pair of every kept judgment is a row. Returns the pairs per prompt."""
    rater_keys = dict(Membership.objects.values_list("user_id", "rater_key"))
    rows = {row["ranking_id"]: row for split in rows_of(export).values() for row in split}
    pairs_of_prompt: dict[int, list[tuple]] = defaultdict(list)
    expected_ids = set()
    for judgment in kept_judgments(campaign):
        prompt = judgment.comparison.prompt
        for ranking_id, a, b, label_a in expected_pairs(judgment):
            expected_ids.add(ranking_id)
            pairs_of_prompt[prompt.pk].append((judgment.pk, ranking_id, label_a != 0.5))
            row = rows[ranking_id]
            swapped = row["image_0_uid"] == b
            assert (row["image_0_uid"], row["image_1_uid"]) == ((b, a) if swapped else (a, b))
            assert row["label_0"] == (1.0 - label_a if swapped else label_a)
            assert row["label_1"] == 1.0 - row["label_0"]
            assert row["has_label"] == (label_a != 0.5)
            winner = {1.0: row["image_0_uid"], 0.0: row["image_1_uid"]}.get(row["label_0"])
            assert row["best_image_uid"] == (winner or "none")
            assert (row["model_0"], row["model_1"]) == (
                model_of(row["image_0_uid"]),
                model_of(row["image_1_uid"]),
            )
            assert row["are_different"] == (row["model_0"] != row["model_1"])
            assert row["caption"] == prompt.text
            assert row["user_id"] == rater_keys[judgment.annotator_id]
            created = judgment.created_at.astimezone(UTC).replace(tzinfo=None)
            assert row["created_at"] == created
    assert set(rows) == expected_ids
    return pairs_of_prompt


def check_counts_and_representatives(export, pairs_of_prompt) -> list[dict]:
    """num_example_per_prompt (pairs in the default config, labelled pairs in dpo), the dpo
    rows (the labelled ones), and one *_unique row per validation and test prompt: in the
    prompt's first judgment with a preference (else its first), its first labelled pair
    (else its first). Returns the *_unique rows."""
    default, dpo = rows_of(export), rows_of(export, "dpo")
    prompt_of_caption = {}
    for split in MAIN:
        for row in default[split]:
            pairs = next(
                p for p in pairs_of_prompt.values() if row["ranking_id"] in {x[1] for x in p}
            )
            assert row["num_example_per_prompt"] == len(pairs)
            prompt_of_caption[row["caption"]] = pairs
        assert [r["ranking_id"] for r in dpo[split]] == [
            r["ranking_id"] for r in default[split] if r["has_label"]
        ]
        for row in dpo[split]:
            pairs = prompt_of_caption[row["caption"]]
            assert row["num_example_per_prompt"] == sum(1 for p in pairs if p[2])
    unique_rows = []
    for split in ("validation", "test"):
        unique = parquet_rows(export.folder, f"data/{split}_unique-*.parquet")
        assert sorted(r["caption"] for r in unique) == sorted(
            {r["caption"] for r in default[split]}
        )
        for row in unique:
            pairs = sorted(prompt_of_caption[row["caption"]])  # judgment, then pair order
            labelled = [p for p in pairs if p[2]]
            chosen = labelled[0] if labelled else pairs[0]
            assert row["ranking_id"] == chosen[1]
            assert row["num_example_per_prompt"] == 1
            same = next(r for r in default[split] if r["ranking_id"] == row["ranking_id"])
            assert {
                k: v
                for k, v in row.items()
                if k not in ("num_example_per_prompt", "__index_level_0__")
            } == {
                k: v
                for k, v in same.items()
                if k not in ("num_example_per_prompt", "__index_level_0__")
            }
            unique_rows.append(row)
        dpo_unique = parquet_rows(export.folder, f"dpo/{split}_unique-*.parquet")
        assert [r["ranking_id"] for r in dpo_unique] == [
            r["ranking_id"] for r in unique if r["has_label"]
        ]
    return unique_rows


@pytest.fixture
def mixed_campaign(judged_campaign):
    """judged_campaign (preferences, ties, both_bad) with a blocked, a qualifying rater, a
    flagged judgment, gold and a repeat."""
    blocked, qualifying = annotator(judged_campaign), annotator(judged_campaign)
    first, second, third, fourth = Judgment.objects.order_by("id")[:4]
    Judgment.objects.filter(pk=first.pk).update(annotator=blocked)
    Judgment.objects.filter(pk=second.pk).update(annotator=qualifying)
    Judgment.objects.filter(pk=third.pk).update(excluded=True)
    Judgment.objects.filter(pk=fourth.pk).update(is_gold=True)
    Judgment.objects.filter(pk=Judgment.objects.order_by("-id").first().pk).update(is_repeat=True)
    Membership.objects.filter(user=blocked).update(gate_state=Membership.Gate.BLOCKED)
    Membership.objects.filter(user=qualifying).update(gate_state=Membership.Gate.QUALIFYING)
    return judged_campaign


@pytest.mark.parametrize("seed", [0, 11, 2**63 - 1])
def test_a_pairwise_export_has_one_row_per_kept_judgment_with_its_answer(mixed_campaign, seed):
    export = build(mixed_campaign, seed=seed, splits=WIDE)
    pairs = check_rows_against_judgments(mixed_campaign, export)
    check_counts_and_representatives(export, pairs)
    counts = export.manifest["counts"]
    assert counts["excluded"] == {
        "blocked_rater": 1,
        "both_bad": 23,  # 24 both_bad answers, the last one a repeat
        "excluded_flag": 1,
        "gold": 1,
        "repeat": 1,
        "state_not_included": 1,
    }
    ties = sum(1 for prompt in pairs.values() for p in prompt if not p[2])
    assert counts["ties"] == counts["ties_dropped_for_dpo"] == ties > 0


def test_batch_and_shard_sizes_change_the_files_not_the_rows(mixed_campaign, settings, tmp_path):
    settings.PUBLIC_BASE_URL = "https://pickwise.example"
    whole = build(mixed_campaign, seed=5, folder=tmp_path / "whole")
    # Batches of 3 rows and shards of 96 KB: batches and files end in the middle of windows.
    settings.EXPORT_BATCH_ROWS = 3
    settings.EXPORT_SHARD_MAX_BYTES = 96 * 1024
    pieces = build(mixed_campaign, seed=5, folder=tmp_path / "pieces")
    assert len([f for f in pieces.manifest["files"] if f["name"].startswith("data/train-")]) > 1
    for config in ("data", "dpo"):
        for split in (*MAIN, "validation_unique", "test_unique"):
            pattern = f"{config}/{split}-*.parquet"
            assert parquet_rows(pieces.folder, pattern) == parquet_rows(whole.folder, pattern)
    assert pieces.manifest["counts"] == whole.manifest["counts"]
    assert pieces.manifest["images_encoded"] == whole.manifest["images_encoded"] > 0
    row = parquet_rows(whole.folder, "data/train-*.parquet")[0]
    assert row["image_0_url"].startswith("https://pickwise.example/")


@pytest.fixture
def ranked_campaign(db):
    """Six prompts of three images (k=3), three raters. Rater one ranks m1 > m2 > m3, rater
    two m3 > m1 = m2 (its first pair, m1 against m2, a tie). On two prompts every judgment
    is then a single tier (all ties); on the others the first judgment is."""
    campaign = campaign_with_comparisons(
        prompts=6, models=("m1", "m2", "m3"), kind="ranking", k=3, overlap=3
    )

    def ranking(order):
        def answer(assignment):
            tiers = defaultdict(list)
            for uid in assignment.presented:
                tiers[order[model_of(uid)]].append(uid)
            return {"overall": [tiers[t] for t in sorted(tiers)]}

        return answer

    judge_all(campaign, [annotator(campaign)], ranking({"m1": 0, "m2": 1, "m3": 2}))
    judge_all(campaign, [annotator(campaign)], ranking({"m3": 0, "m1": 1, "m2": 1}))
    judge_all(campaign, [annotator(campaign)], ranking({"m2": 0, "m1": 1, "m3": 2}))
    by_prompt = defaultdict(list)
    for judgment in Judgment.objects.order_by("id").select_related("comparison"):
        by_prompt[judgment.comparison.prompt_id].append(judgment)
    for position, judgments in enumerate(by_prompt.values()):
        for judgment in judgments if position < 2 else judgments[:1]:
            uids = canonical_uids(judgment.comparison_id)
            Judgment.objects.filter(pk=judgment.pk).update(answers={"overall": [uids]})
    return campaign


@pytest.mark.parametrize("seed", [0, 3])
def test_rankings_expand_into_one_row_per_pair(ranked_campaign, seed):
    export = build(ranked_campaign, seed=seed, splits=WIDE)
    pairs = check_rows_against_judgments(ranked_campaign, export)
    assert sum(len(p) for p in pairs.values()) == 6 * 3 * 3  # prompts x judgments x pairs
    unique = check_counts_and_representatives(export, pairs)
    # Both ways of choosing a prompt's row were taken: an all-tie prompt's first pair, and
    # a labelled pair that is not its judgment's first.
    assert any(not row["has_label"] for row in unique)
    assert any(row["has_label"] and row["ranking_id"] % PAIR_ID_STRIDE for row in unique)


def test_a_ranking_answer_in_a_pairwise_campaign_gives_the_row_its_winner_does(small_campaign):
    judgment = Judgment.objects.order_by("id").first()
    winner = judgment.answers["overall"]
    before = {r["ranking_id"]: r for r in parquet_rows(build(small_campaign).folder, "data/*")}
    loser = next(u for u in canonical_uids(judgment.comparison_id) if u != winner)
    Judgment.objects.filter(pk=judgment.pk).update(answers={"overall": [[winner], [loser]]})
    after = {r["ranking_id"]: r for r in parquet_rows(build(small_campaign).folder, "data/*")}
    assert after == before


def test_an_answer_about_other_images_fails_the_export_with_its_id(small_campaign):
    from exports.models import Export
    from exports.services import export_build, export_create

    judgment = Judgment.objects.order_by("id").last()
    Judgment.objects.filter(pk=judgment.pk).update(
        answers={"overall": "00000000-0000-4000-8000-000000000000"}
    )
    export = export_create(
        requested_by=None, campaign=small_campaign, format="pickapic", enqueue=False
    )
    export = export_build(export=export)
    assert export.status == Export.Status.FAILED
    assert export.error == (
        f"ValueError: Judgment {judgment.pk} answers about images that are not its "
        "comparison's; the data is inconsistent."
    )
