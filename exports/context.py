"""What every writer needs while building one export."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files.storage import default_storage

from annotate.models import Campaign
from exports.policy import Policy
from exports.scan import Tally
from exports.selectors import ImageRow, Rater, judgment_batches
from exports.writers.images import JpegEncoder


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
    notes: dict = field(default_factory=dict)

    def batches(self, *, audit: bool = False):
        return judgment_batches(
            campaign=self.campaign,
            criterion=self.criterion,
            last_id=self.last_id,
            batch_size=self.batch_rows,
            audit=audit,
        )

    def image_urls(self, images: list[ImageRow]) -> dict[int, str]:
        """Absolute URL per image: the storage's own when absolute, else PUBLIC_BASE_URL +
        the file URL, else empty."""
        urls = {}
        for image in images:
            if image.id in urls:
                continue
            url = default_storage.url(image.file)
            if url.startswith(("http://", "https://")):
                urls[image.id] = url
            elif self.public_base_url:
                urls[image.id] = self.public_base_url + url
            else:
                urls[image.id] = ""
        return urls


@dataclass
class FormatResult:
    """What a writer reports: files written (relative to the folder) and per-split rows."""

    tally: Tally
    rows: dict[str, dict[str, int]]
    configs: dict[str, dict[str, list[str]]]  # config -> split -> data files
    dataset_info: dict[str, dict] = field(default_factory=dict)  # config -> features, splits
    extra_counts: dict = field(default_factory=dict)
