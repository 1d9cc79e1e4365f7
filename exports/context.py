"""What every writer needs while building one export."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.files.storage import default_storage

from annotate.models import Campaign

if TYPE_CHECKING:
    from exports.combined import Combination
from exports.policy import Policy
from exports.scan import Tally
from exports.selectors import ImageRow, Rater, comparison_images, judgment_batches
from exports.writers.images import JpegEncoder

# Comparisons whose images are remembered between batches (a few MB).
IMAGE_MEMORY = 50_000


@dataclass
class BuildContext:
    campaign: Campaign
    criterion: str
    policy: Policy
    seed: int
    split_settings: dict
    folder: Path
    last_id: int
    raters: dict[int, Rater]
    batch_rows: int
    shard_max_bytes: int
    encoder: JpegEncoder
    public_base_url: str
    progress: Callable[[int], None]
    # Several campaigns in one export (exports.combined); None for one campaign.
    combination: "Combination | None" = None
    _storage_urls_absolute: bool | None = None
    _images: dict[int, list[ImageRow]] = field(default_factory=dict)

    def batches(self, *, audit: bool = False, with_time: bool = True):
        if self.combination is None:
            return self._campaign_batches(self.campaign, audit=audit, with_time=with_time)
        return self._combined_batches(audit=audit, with_time=with_time)

    def _campaign_batches(self, campaign: Campaign, *, audit: bool, with_time: bool):
        return judgment_batches(
            campaign=campaign,
            criterion=self.criterion,
            last_id=self.last_id,
            batch_size=self.batch_rows,
            audit=audit,
            with_time=with_time,
        )

    def _combined_batches(self, *, audit: bool, with_time: bool):
        # Campaign after campaign, in the order given: the first copy of a pair is met first.
        for campaign in self.combination.campaigns:
            batches = self._campaign_batches(campaign, audit=audit, with_time=with_time)
            yield from self.combination.rows(campaign, batches, audit)

    def images_of(self, comparison_ids: set[int]) -> dict[int, list[ImageRow]]:
        """Each comparison's images, remembered across batches (judgments of a comparison
        come close together in time); the memory is bounded and cleared when full."""
        if len(self._images) > IMAGE_MEMORY:
            self._images.clear()
        missing = sorted(c for c in comparison_ids if c not in self._images)
        if missing:
            self._images.update(comparison_images(comparison_ids=missing))
        return self._images

    def image_urls(self, images: list[ImageRow]) -> dict[int, str]:
        """Absolute URL per image: the storage's own when absolute, else PUBLIC_BASE_URL +
        the file URL, else empty."""
        if not self.urls_enabled():
            return _EMPTY_URLS
        urls = self.file_urls([image.file for image in images])
        return {image.id: url for image, url in zip(images, urls, strict=True)}

    def urls_enabled(self) -> bool:
        if self._storage_urls_absolute is None:
            self._storage_urls_absolute = default_storage.url("x").startswith(
                ("http://", "https://")
            )
        return self._storage_urls_absolute or bool(self.public_base_url)

    def file_urls(self, files: list[str]) -> list[str]:
        """image_urls by stored file name (empty when URLs are off)."""
        if not self.urls_enabled():
            return [""] * len(files)
        prefix = "" if self._storage_urls_absolute else self.public_base_url
        return [prefix + default_storage.url(file) for file in files]


class _Empty(dict):
    def __missing__(self, key):
        return ""


_EMPTY_URLS = _Empty()


@dataclass
class FormatResult:
    """What a writer reports: files written (relative to the folder) and per-split rows."""

    tally: Tally
    rows: dict[str, dict[str, int]]
    configs: dict[str, dict[str, list[str]]]  # config -> split -> data files
    dataset_info: dict[str, dict] = field(default_factory=dict)  # config -> features, splits
    extra_counts: dict = field(default_factory=dict)
