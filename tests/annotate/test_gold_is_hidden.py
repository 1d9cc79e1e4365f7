"""An annotator cannot tell gold and repeat tasks from regular ones by what they can read.

The test plays the attacker: around every `next` and submit it records everything an
annotator can fetch (the campaign in the API before and after, the campaign list, their
status banner, the task payload, the image URLs, extensions, served content types, decoded
formats, dimensions, JPEG encoder settings and which image is the larger file), turns it into
discrete features, and fits the best lookup-table classifier on all of it (the attacker's
best case: trained on the very tasks it is scored on). Its accuracy must not beat always
guessing the majority class by more than a binomial margin.

What a task shows by design is out of scope: a corrupted gold image looks degraded (raters
are meant to see that), and a repeat shows the same images again.
"""

import io
import math
import mimetypes
from collections import Counter, defaultdict
from datetime import datetime

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image as PILImage

from annotate.models import Assignment
from annotate.services.gold import gold_build
from annotate.services.images import image_create
from tests.factories import CampaignFactory, PromptFactory, annotator

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CRITERIA = [{"key": "overall", "question": "Better?", "allow_tie": True, "allow_both_bad": True}]
PROMPTS = 70
GOLD = 30
TASKS = 70


def _photo(seed: int, fmt: str) -> bytes:
    # Smooth colour fields with detail, like a photo: JPEG and WebP encode them as usual.
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = PILImage.fromarray(base).resize((64, 64), PILImage.BICUBIC)
    noise = rng.integers(0, 40, (64, 64, 3), dtype=np.uint8)
    image = PILImage.fromarray(np.asarray(image) // 2 + noise)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=88)
    return buffer.getvalue()


def _campaign(fmt: str):
    campaign = CampaignFactory(
        criteria=CRITERIA, overlap=1, gold_rate=0.3, repeat_rate=0.15, qualification_size=0
    )
    for n in range(PROMPTS):
        prompt = PromptFactory(campaign=campaign)
        for model in ("model-a", "model-b"):
            image_create(
                prompt=prompt, data=_photo(2 * n + (model == "model-b"), fmt), model_name=model
            )
    from annotate.services.comparisons import comparisons_build_for_campaign

    comparisons_build_for_campaign(campaign=campaign)
    assert len(gold_build(campaign=campaign, count=GOLD)) == GOLD
    return campaign


def _observe(api, page, campaign) -> dict:
    """Everything the annotator can read about the campaign, as it is now."""
    return {
        "detail": api.get(reverse("annotate:campaign", args=[campaign.pk])).json(),
        "list": api.get(reverse("annotate:campaigns")).json(),
        "status": page.get(
            reverse("frontend:annotate-status", args=[campaign.pk])
        ).content.decode(),
    }


def _image_features(task: dict) -> dict:
    urls = [image["url"] for image in task["images"]]
    files = []
    for url in urls:
        name = url.removeprefix("/media/")
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
        with PILImage.open(io.BytesIO(data)) as image:
            files.append(
                {
                    "size": len(data),
                    "format": image.format,
                    "qtables": repr(getattr(image, "quantization", None)),
                    "mode": image.mode,
                }
            )
    extensions = [url.rsplit(".", 1)[-1] for url in urls]
    return {
        "extensions": tuple(sorted(extensions)),
        "one_extension": len(set(extensions)) == 1,
        "content_types": tuple(sorted(mimetypes.guess_type(url)[0] for url in urls)),
        "formats": tuple(sorted(f["format"] for f in files)),
        "modes": tuple(sorted(f["mode"] for f in files)),
        "same_encoder": len({f["qtables"] for f in files}) == 1,
        "same_url": len(set(urls)) < len(urls),
        "dimensions": tuple(sorted((i["width"], i["height"]) for i in task["images"])),
        "first_is_larger": files[0]["size"] > files[-1]["size"],
        "url_shape": tuple(sorted(len(url) for url in urls)),
    }


def _task_features(task: dict, *, asked_at: datetime) -> dict:
    expires = datetime.fromisoformat(task["expires_at"].replace("Z", "+00:00"))
    return {
        "keys": tuple(sorted(task)),
        "kind": task["kind"],
        "image_count": len(task["images"]),
        "image_keys": tuple(sorted({key for image in task["images"] for key in image})),
        "criteria": repr(task["criteria"]),
        "lease": round((expires - asked_at).total_seconds() / 10),
    }


def _play(api, page, campaign) -> list[tuple[dict, str]]:
    from django.utils import timezone

    rows = []
    for _ in range(TASKS):
        before = _observe(api, page, campaign)
        asked_at = timezone.now()
        response = api.post(reverse("annotate:next", args=[campaign.pk]), {}, format="json")
        if response.status_code == 204:
            break
        task = response.json()
        after_next = _observe(api, page, campaign)
        # Answer as an attentive rater would (right on gold, so gating keeps them on),
        # then look again.
        assignment = Assignment.objects.select_related("comparison").get(pk=task["id"])
        answer = (assignment.comparison.gold_answer or {}).get("overall")
        submitted = api.post(
            reverse("annotate:submit", args=[task["id"]]),
            {"answers": {"overall": answer or task["images"][0]["uid"]}, "duration_ms": 1500},
            format="json",
        )
        assert submitted.status_code == 201, submitted.content
        after_submit = _observe(api, page, campaign)
        features = {
            **_task_features(task, asked_at=asked_at),
            **_image_features(task),
            **{f"{part}_moved_on_next": before[part] != after_next[part] for part in before},
            **{
                f"{part}_moved_on_submit": after_next[part] != after_submit[part] for part in before
            },
        }
        truth = "gold" if assignment.is_gold else "repeat" if assignment.is_repeat else "regular"
        rows.append((features, truth))
    return rows


def _lookup_accuracy(rows: list[tuple[tuple, bool]]) -> float:
    """Accuracy of predicting, for each feature value, the majority class seen with it."""
    by_value: dict[tuple, Counter] = defaultdict(Counter)
    for value, label in rows:
        by_value[value][label] += 1
    return sum(counts.most_common(1)[0][1] for counts in by_value.values()) / len(rows)


def _margin(p: float, n: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / n) + 1 / n


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_an_annotator_cannot_tell_gold_or_repeat_tasks_from_regular_ones(api_client, client, fmt):
    campaign = _campaign(fmt)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    client.force_login(user)
    rows = _play(api_client, client, campaign)
    classes = Counter(label for _, label in rows)
    assert classes["gold"] >= 10 and classes["regular"] >= 10 and classes["repeat"] >= 1, classes

    for target in ("gold", "repeat", "check"):
        labelled = [
            (features, label == target or (target == "check" and label != "regular"))
            for features, label in rows
        ]
        n = len(labelled)
        majority = max(Counter(label for _, label in labelled).values()) / n
        limit = majority + _margin(majority, n)
        for name in rows[0][0]:
            single = [((features[name],), label) for features, label in labelled]
            accuracy = _lookup_accuracy(single)
            assert accuracy <= limit, (target, name, accuracy, majority)
        joint = [(tuple(sorted(features.items())), label) for features, label in labelled]
        accuracy = _lookup_accuracy(joint)
        print(f"{fmt} {target}: attacker {accuracy:.3f}, majority {majority:.3f}, n={n}")
        assert accuracy <= limit, (target, "all features", majority)


def test_derived_gold_images_keep_the_format_of_their_source():
    for fmt, extension in (("JPEG", "jpg"), ("WEBP", "webp")):
        campaign = CampaignFactory(criteria=CRITERIA)
        for n in range(6):
            prompt = PromptFactory(campaign=campaign)
            image_create(prompt=prompt, data=_photo(n, fmt), model_name="m")
        for comparison in gold_build(campaign=campaign, count=6):
            for image in comparison.images.all():
                assert image.file.name.endswith(f".{extension}"), (comparison.gold_kind, image)
                with image.file.open("rb") as handle, PILImage.open(handle) as decoded:
                    assert decoded.format == fmt
