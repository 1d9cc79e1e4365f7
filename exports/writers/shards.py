"""Parquet shard sets: one split's rows in files of bounded size, written batch by batch.

Files are named `{split}-{i:05d}-of-{n:05d}.parquet` once the set is closed (n is known only
then). A new file starts before a batch would take the current one past `max_bytes`; a
batch larger than that on its own is sliced first. Writes are deterministic: the same rows
give the same bytes (no timestamps in the parquet metadata).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Room for the footer (schema, row group statistics) when deciding whether a batch fits.
FOOTER_RESERVE = 64 * 1024


@dataclass(frozen=True)
class Shard:
    path: Path
    rows: int
    num_bytes: int  # in-memory Arrow size when read back, as `datasets` records it


def schema_with_features(schema: pa.Schema, features: dict) -> pa.Schema:
    """Attach the `datasets` features, so plain `load_dataset("parquet", ...)` keeps them."""
    info = json.dumps({"info": {"features": features}}, sort_keys=True)
    return schema.with_metadata({"huggingface": info})


class ShardSet:
    def __init__(self, *, folder: Path, split: str, schema: pa.Schema, max_bytes: int) -> None:
        self.folder = folder
        self.split = split
        self.schema = schema
        self.max_bytes = max_bytes
        self.rows = 0
        self._paths: list[Path] = []
        self._rows_per_file: list[int] = []
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        for piece in self._pieces(table):
            if self._writer is not None and self._would_overflow(piece):
                self._close_file()
            if self._writer is None:
                self._open_file()
            self._writer.write_table(piece)
            self._rows_per_file[-1] += piece.num_rows
            self.rows += piece.num_rows

    def close(self) -> list[Shard]:
        """Finish the last file and give every file its final name."""
        if self._writer is not None:
            self._close_file()
        total = len(self._paths)
        shards = []
        for index, (path, rows) in enumerate(zip(self._paths, self._rows_per_file, strict=True)):
            final = self.folder / f"{self.split}-{index:05d}-of-{total:05d}.parquet"
            path.rename(final)
            shards.append(Shard(final, rows, _arrow_bytes(final)))
        return shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None

    def _would_overflow(self, table: pa.Table) -> bool:
        return self._sink.tell() + table.nbytes + FOOTER_RESERVE > self.max_bytes

    def _pieces(self, table: pa.Table) -> list[pa.Table]:
        budget = max(1, (self.max_bytes - FOOTER_RESERVE) // 2)
        if table.nbytes <= budget or table.num_rows == 1:
            return [table]
        per_row = max(1, table.nbytes // table.num_rows)
        step = max(1, budget // per_row)
        return [table.slice(start, step) for start in range(0, table.num_rows, step)]

    def _open_file(self) -> None:
        path = self.folder / f".{self.split}-{len(self._paths):05d}.parquet.partial"
        self._paths.append(path)
        self._rows_per_file.append(0)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(
            self._sink, self.schema, compression="snappy", write_statistics=True
        )

    def _close_file(self) -> None:
        self._writer.close()
        self._sink.close()
        self._writer = None
        self._sink = None


def _arrow_bytes(path: Path) -> int:
    # Read back row group by row group, as `datasets` does, so dataset_info's num_bytes
    # matches what it records (columns read from parquet carry validity bitmaps).
    parquet = pq.ParquetFile(path)
    return sum(
        parquet.read_row_group(index).nbytes for index in range(parquet.metadata.num_row_groups)
    )
