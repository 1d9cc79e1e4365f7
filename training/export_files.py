"""What the web side reads from an export's files: pair counts and held-out captions (pyarrow,
no torch). The trainer reads the same files itself; these reads are only for checks at start
and for the evaluation loop. pyarrow is imported by the reads: the admin and the API load this
module in every web process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TIE = 0.5
HELD_OUT_SPLIT = "test_unique"


@dataclass(frozen=True)
class SplitCounts:
    files: int
    rows: int
    ties: int

    @property
    def pairs(self) -> int:
        return self.rows - self.ties


def split_files(*, folder: str | Path, split: str) -> list[Path]:
    return sorted((Path(folder) / "data").glob(f"{split}-*.parquet"))


def split_counts(*, folder: str | Path, split: str = "train") -> SplitCounts:
    """Rows and ties (label_0 == 0.5) of one split, reading only the label column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = ties = 0
    files = split_files(folder=folder, split=split)
    for path in files:
        labels = pq.read_table(path, columns=["label_0"]).column("label_0")
        rows += len(labels)
        ties += pc.sum(pc.equal(labels, TIE)).as_py() or 0
    return SplitCounts(files=len(files), rows=rows, ties=ties)


def ranked_split_counts(*, folder: str | Path, split: str = "train") -> SplitCounts:
    """Rankings of one split of a ranked export; a ranking whose images all tie counts as a tie
    (RankDPO drops it, as DPO drops a tied pair)."""
    import pyarrow.parquet as pq

    rows = ties = 0
    files = split_files(folder=folder, split=split)
    for path in files:
        for ranking in pq.read_table(path, columns=["ranking"]).column("ranking").to_pylist():
            rows += 1
            ties += len(set(ranking or [])) <= 1
    return SplitCounts(files=len(files), rows=rows, ties=ties)


def held_out_captions(*, folder: str | Path, split: str = HELD_OUT_SPLIT) -> list[str]:
    """The split's distinct captions in first-seen order (test_unique has one row per prompt).

    A ranked export has no test_unique split: its test split and prompt column stand in.
    """
    import pyarrow.parquet as pq

    seen: dict[str, None] = {}
    files = split_files(folder=folder, split=split)
    column = "caption"
    if not files and split == HELD_OUT_SPLIT:
        files, column = split_files(folder=folder, split="test"), "prompt"
    for path in files:
        for caption in pq.read_table(path, columns=[column]).column(column).to_pylist():
            if caption and caption.strip():
                seen.setdefault(caption.strip(), None)
    return list(seen)
