"""Preference pairs from Pick-a-Pic-format parquet, ranked lists from the ranked format, and the
latent / text-embedding cache.

The frozen VAE and text encoder are preprocessing: every image is encoded once (the latent
distribution's mean and std, so a fresh latent is still sampled each time it is used) and every
caption once, keyed by the sha256 of the image bytes / caption text under a folder named for the
encoder's weights and the resolution, so the cache is shared safely across epochs and jobs.

Augmentation and caching: images are cached at the final resolution with a centre crop (no
random crop). When flipping is on, the mirrored image is encoded too, so a flip is exact rather
than a flip of the latent; winner and loser of a pair share one flip decision. Flip and prompt
dropout are decided from (seed, sample position), so they are identical after a resume and do
not depend on data-loader workers.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from training.trainer.config import TrainerInputError  # noqa: F401 (raised here; tests import it from here)

REQUIRED_COLUMNS = ("jpg_0", "jpg_1", "label_0", "caption")
# The ranked export: one row per ranking, `ranking` holding each image's rank (1 = best,
# equal ranks = ties), as exports.writers.ranked writes it.
RANKED_COLUMNS = ("images", "ranking", "prompt")
TIE = 0.5
VALID_LABELS = (0.0, 0.5, 1.0)
# fp16 halves the cache on disk; its 10-bit mantissa is finer than the bf16 used in training.
CACHE_DTYPE = torch.float16


@dataclass(frozen=True)
class LabelCounts:
    rows: int
    ties: int

    @property
    def pairs(self) -> int:
        return self.rows - self.ties


@dataclass(frozen=True)
class PreferencePair:
    winner: bytes
    loser: bytes
    caption: str


@dataclass(frozen=True)
class PairKeys:
    winner: str
    loser: str
    caption: str


@dataclass(frozen=True)
class ListCounts:
    """Rankings read, those dropped because every image ties, and the list length k."""

    rows: int
    ties: int
    k: int

    @property
    def pairs(self) -> int:  # the unit of training: lists here (the trainer reports pairs)
        return self.rows - self.ties


@dataclass(frozen=True)
class RankedList:
    images: list[bytes]
    psi: list[float]
    caption: str


@dataclass(frozen=True)
class ListKeys:
    images: tuple[str, ...]
    psi: tuple[float, ...]
    caption: str


def find_parquet_files(data_dir: Path, split: str) -> list[Path]:
    """Parquet files of one split of an export (``data/{split}-*.parquet``), or of a plain folder.

    A plain folder of parquet files is used whole, unless some files carry the split prefix.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TrainerInputError(f"data folder not found: {data_dir}")
    export_data = data_dir / "data"
    if export_data.is_dir():
        files = sorted(export_data.glob(f"{split}-*.parquet"))
        if not files:
            found = sorted({p.name.split("-")[0] for p in export_data.glob("*.parquet")})
            raise TrainerInputError(
                f"no parquet files for split {split!r} in {export_data} "
                f"(splits found: {', '.join(found) or 'none'})"
            )
        return files
    files = sorted(data_dir.glob("*.parquet"))
    in_split = [p for p in files if p.name.startswith(f"{split}-")]
    if in_split:
        return in_split
    if not files:
        raise TrainerInputError(f"no parquet files in {data_dir} (nor in {export_data})")
    return files


def count_labels(files: list[Path]) -> LabelCounts:
    """Rows and ties over all files, reading only ``label_0``; checks columns and label values."""
    rows = ties = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise TrainerInputError(
                f"{path} lacks the Pick-a-Pic column(s) {', '.join(missing)} "
                f"(needs {', '.join(REQUIRED_COLUMNS)})"
            )
        labels = parquet.read(columns=["label_0"]).column("label_0").to_numpy(zero_copy_only=False)
        bad = labels[~np.isin(labels, VALID_LABELS)]
        if bad.size:
            raise TrainerInputError(
                f"{path}: label_0 must be 1.0, 0.0 or 0.5 (tie); found {bad[:5].tolist()}"
            )
        rows += labels.size
        ties += int((labels == TIE).sum())
    return LabelCounts(rows=rows, ties=ties)


def iter_pairs(files: list[Path], *, rows_per_batch: int = 256) -> Iterator[PreferencePair]:
    """Non-tie rows as (winner, loser, caption), streamed so memory stays flat in rows."""
    for path in files:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=rows_per_batch, columns=REQUIRED_COLUMNS):
            columns = batch.to_pydict()
            for jpg_0, jpg_1, label, caption in zip(
                columns["jpg_0"],
                columns["jpg_1"],
                columns["label_0"],
                columns["caption"],
                strict=True,
            ):
                if label == TIE:
                    continue
                winner, loser = (jpg_0, jpg_1) if label == 1.0 else (jpg_1, jpg_0)
                yield PreferencePair(winner=winner, loser=loser, caption=caption or "")


def relevance_from_ranking(ranking: list[int]) -> list[float]:
    """psi_i: the share of the other images that image i beats (RankDPO, Algorithm 1).

    Algorithm 1 counts, over n reward models, the images each one scores strictly lower, and
    divides by n (k - 1); one human ranking is one such judge (n = 1), so a tie is no win.
    Ranks are 1 = best: [1, 2, 2] gives [1.0, 0.0, 0.0], [1, 2, 3] gives [1.0, 0.5, 0.0].
    """
    k = len(ranking)
    return [sum(other > rank for other in ranking) / (k - 1) for rank in ranking]


def count_ranked_lists(files: list[Path]) -> ListCounts:
    """Rankings over all files, reading only ``ranking``; checks columns, ranks and one k."""
    rows = ties = 0
    lengths: set[int] = set()
    for path in files:
        parquet = pq.ParquetFile(path)
        missing = [c for c in RANKED_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise TrainerInputError(
                f"{path} lacks the ranked-format column(s) {', '.join(missing)} "
                f"(RankDPO needs {', '.join(RANKED_COLUMNS)}: export the ranked format)"
            )
        for ranking in parquet.read(columns=["ranking"]).column("ranking").to_pylist():
            if not ranking or len(ranking) < 2 or any(r is None or r < 1 for r in ranking):
                raise TrainerInputError(
                    f"{path}: each ranking must give two or more images a rank of 1 or more; "
                    f"found {ranking}"
                )
            lengths.add(len(ranking))
            rows += 1
            ties += len(set(ranking)) == 1
    if len(lengths) > 1:
        raise TrainerInputError(
            f"RankDPO batches lists of one length; the rankings have {sorted(lengths)} images "
            "(train on one campaign's export)"
        )
    return ListCounts(rows=rows, ties=ties, k=lengths.pop() if lengths else 0)


def iter_ranked_lists(files: list[Path], *, rows_per_batch: int = 64) -> Iterator[RankedList]:
    """Rankings with at least one preference, as images, relevance psi and caption; streamed."""
    for path in files:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=rows_per_batch, columns=RANKED_COLUMNS):
            columns = batch.to_pydict()
            for images, ranking, prompt in zip(
                columns["images"], columns["ranking"], columns["prompt"], strict=True
            ):
                if len(images) != len(ranking):
                    raise TrainerInputError(
                        f"{path}: a row has {len(images)} images and {len(ranking)} ranks"
                    )
                if len(set(ranking)) == 1:
                    continue
                psi = relevance_from_ranking(ranking)
                yield RankedList(images=list(images), psi=psi, caption=prompt or "")


def content_key(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def module_fingerprint(module: torch.nn.Module, *extra: str) -> str:
    """sha256 of a module's config and weights: cache entries never outlive a model change."""
    digest = hashlib.sha256()
    config = getattr(module, "config", None)
    if config is not None:
        as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        digest.update(json.dumps(as_dict, sort_keys=True, default=str).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


def load_image(data: bytes, resolution: int) -> torch.Tensor:
    """Decode, resize the short side to ``resolution``, centre-crop; (3, H, W) in [-1, 1]."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    scale = resolution / min(image.size)
    width = max(resolution, round(image.width * scale))
    height = max(resolution, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - resolution) // 2, (height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class FeatureCache:
    """One safetensors file per image or caption, written atomically (write, then rename)."""

    def __init__(self, *, root: Path, vae_fingerprint: str, text_fingerprint: str, resolution: int):
        self.latent_dir = Path(root) / "latents" / f"{vae_fingerprint[:16]}-{resolution}px"
        self.text_dir = Path(root) / "text" / text_fingerprint[:16]

    def latent_path(self, key: str) -> Path:
        return self.latent_dir / key[:2] / f"{key}.safetensors"

    def text_path(self, key: str) -> Path:
        return self.text_dir / key[:2] / f"{key}.safetensors"

    def put(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        save_file({k: v.to(CACHE_DTYPE).contiguous().cpu() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)


@dataclass
class CacheStats:
    pairs: int = 0
    images_encoded: int = 0
    captions_encoded: int = 0


@dataclass(frozen=True)
class Encoding:
    """How the cache builders turn images and captions into features: the frozen encoders,
    the training resolution, whether flipped latents are cached too, where and in what
    precision they run, and how many items go through an encoder at once."""

    vae: object
    text_encoder: object
    tokenizer: object
    resolution: int
    random_flip: bool
    device: torch.device
    dtype: torch.dtype
    batch_size: int


@torch.no_grad()
def build_feature_cache(
    *,
    files: list[Path],
    cache: FeatureCache,
    encoding: Encoding,
) -> tuple[list[PairKeys], CacheStats]:
    """Encode every image and caption of the pairs not yet cached; return the pairs as keys."""
    groups = (((pair.winner, pair.loser), pair.caption) for pair in iter_pairs(files))
    encoded, stats = _cache_groups(
        groups,
        cache=cache,
        encoding=encoding,
    )
    keys = [
        PairKeys(winner=images[0], loser=images[1], caption=caption) for images, caption in encoded
    ]
    return keys, stats


@torch.no_grad()
def build_list_feature_cache(
    *,
    files: list[Path],
    cache: FeatureCache,
    encoding: Encoding,
) -> tuple[list[ListKeys], CacheStats]:
    """The same for ranked lists: every image of every ranking, keyed with its psi."""
    lists, list_psi = [], []

    def groups():
        for ranked in iter_ranked_lists(files):
            list_psi.append(tuple(ranked.psi))
            yield tuple(ranked.images), ranked.caption

    encoded, stats = _cache_groups(
        groups(),
        cache=cache,
        encoding=encoding,
    )
    for (images, caption), psi in zip(encoded, list_psi, strict=True):
        lists.append(ListKeys(images=images, psi=psi, caption=caption))
    return lists, stats


def _cache_groups(
    groups,
    *,
    cache: FeatureCache,
    encoding: Encoding,
) -> tuple[list[tuple[tuple[str, ...], str]], CacheStats]:
    """Encode the images and captions of (images, caption) groups that are not cached yet."""
    vae, text_encoder, tokenizer = encoding.vae, encoding.text_encoder, encoding.tokenizer
    resolution, random_flip = encoding.resolution, encoding.random_flip
    device, dtype, batch_size = encoding.device, encoding.dtype, encoding.batch_size
    stats = CacheStats()
    keys: list[tuple[tuple[str, ...], str]] = []
    pending_images: dict[str, bytes] = {}
    pending_captions: dict[str, str] = {}

    def flush_images() -> None:
        items = list(pending_images.items())
        pending_images.clear()
        pixels = torch.stack([load_image(data, resolution) for _, data in items])
        views = [pixels, pixels.flip(-1)] if random_flip else [pixels]
        encoded = []
        for view in views:
            dist = vae.encode(view.to(device=device, dtype=dtype)).latent_dist
            encoded.append((dist.mean.float(), dist.std.float()))
        for index, (key, _) in enumerate(items):
            tensors = {"mean": encoded[0][0][index], "std": encoded[0][1][index]}
            if random_flip:
                tensors |= {"mean_flip": encoded[1][0][index], "std_flip": encoded[1][1][index]}
            cache.put(cache.latent_path(key), tensors)
        stats.images_encoded += len(items)

    def flush_captions() -> None:
        items = list(pending_captions.items())
        pending_captions.clear()
        embeddings = encode_captions(
            [caption for _, caption in items],
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            device=device,
        )
        for (key, _), embedding in zip(items, embeddings, strict=True):
            cache.put(cache.text_path(key), {"embedding": embedding})
        stats.captions_encoded += len(items)

    for images, caption in groups:
        image_keys = tuple(content_key(image) for image in images)
        caption_key = content_key(caption)
        keys.append((image_keys, caption_key))
        for key, data in zip(image_keys, images, strict=True):
            if not cache.latent_path(key).exists():
                pending_images[key] = data
        if not cache.text_path(caption_key).exists():
            pending_captions[caption_key] = caption
        if len(pending_images) >= batch_size:
            flush_images()
        if len(pending_captions) >= batch_size:
            flush_captions()
    if pending_images:
        flush_images()
    if pending_captions:
        flush_captions()
    stats.pairs = len(keys)
    return keys, stats


def encode_captions(captions: list[str], *, text_encoder, tokenizer, device) -> torch.Tensor:
    """The text encoder's last hidden state, as Stable Diffusion conditions on it."""
    tokens = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return text_encoder(tokens.input_ids.to(device))[0].float()


def ensure_caption_cached(*, caption: str, cache: FeatureCache, text_encoder, tokenizer, device):
    """Cache one caption (the empty prompt used for prompt dropout); return its key."""
    key = content_key(caption)
    if not cache.text_path(key).exists():
        with torch.no_grad():
            embedding = encode_captions(
                [caption], text_encoder=text_encoder, tokenizer=tokenizer, device=device
            )[0]
        cache.put(cache.text_path(key), {"embedding": embedding})
    return key


class CachedPairDataset(torch.utils.data.Dataset):
    """Item ``position`` is the position-th sample of an endless stream of seeded epochs.

    Each epoch is a permutation seeded by (seed, epoch); flip and prompt dropout are seeded by
    (seed, position). So the stream depends only on the seed, and a resume at any position sees
    exactly the samples an uninterrupted run would.
    """

    def __init__(
        self,
        *,
        pairs: list[PairKeys] | list[ListKeys],
        cache: FeatureCache,
        seed: int,
        random_flip: bool,
        prompt_dropout: float,
        empty_caption_key: str,
    ):
        self.pairs = pairs
        self.cache = cache
        self.seed = seed
        self.random_flip = random_flip
        self.prompt_dropout = prompt_dropout
        self.empty_caption_key = empty_caption_key

    def __len__(self) -> int:
        return len(self.pairs)

    @functools.lru_cache(maxsize=2)  # noqa: B019 - the dataset lives as long as the run
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))

    def _draw(self, position: int):
        """The item at ``position``, its latent suffix (flip) and its caption key (dropout)."""
        epoch, offset = divmod(position, len(self.pairs))
        item = self.pairs[int(self._order(epoch)[offset])]
        # A stream of its own (the 2**32 entry keeps it apart from the epoch orders above).
        draws = np.random.default_rng([self.seed, 1 << 32, position]).random(2)
        flip = self.random_flip and draws[0] < 0.5
        drop = draws[1] < self.prompt_dropout
        return item, "_flip" if flip else "", self.empty_caption_key if drop else item.caption

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        pair, suffix, caption_key = self._draw(position)
        winner = load_file(self.cache.latent_path(pair.winner))
        loser = load_file(self.cache.latent_path(pair.loser))
        caption = load_file(self.cache.text_path(caption_key))
        return {
            "mean_w": winner["mean" + suffix].float(),
            "std_w": winner["std" + suffix].float(),
            "mean_l": loser["mean" + suffix].float(),
            "std_l": loser["std" + suffix].float(),
            "embedding": caption["embedding"].float(),
        }


class CachedListDataset(CachedPairDataset):
    """The same seeded stream over ranked lists: k latents, one caption, psi per image.

    One flip decision covers the whole list, as it covers both images of a pair.
    """

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        ranked, suffix, caption_key = self._draw(position)
        latents = [load_file(self.cache.latent_path(key)) for key in ranked.images]
        caption = load_file(self.cache.text_path(caption_key))
        return {
            "mean": torch.stack([latent["mean" + suffix].float() for latent in latents]),
            "std": torch.stack([latent["std" + suffix].float() for latent in latents]),
            "psi": torch.tensor(ranked.psi, dtype=torch.float32),
            "embedding": caption["embedding"].float(),
        }


class PairBatchSampler(torch.utils.data.Sampler):
    """Endless micro-batches of stream positions for one rank, starting at a given micro-batch.

    Micro-batch k covers positions [k*B*W, (k+1)*B*W) of the stream; rank r takes its B of them.
    """

    def __init__(self, *, batch_size: int, rank: int, world_size: int, start: int):
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self) -> Iterator[list[int]]:
        micro_batch = self.start
        while True:
            first = (micro_batch * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            micro_batch += 1
