"""Row buffers that turn Python tuples into Arrow batches for a shard set.

A buffer flushes after `batch_rows` rows or `max_bytes` of image data, whichever comes
first, so a batch of large images never holds more than a few tens of MB.
"""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from exports.context import FormatResult
from exports.writers.shards import Shard, ShardSet, schema_with_features

if TYPE_CHECKING:
    from exports.consensus import PairConsensus

BUFFER_BYTES = 16 * 1024 * 1024
INDEX_COLUMN = "__index_level_0__"


def features_of(schema: pa.Schema) -> dict:
    """`datasets` features: those the schema carries (a writer that declares Image columns
    attaches them), else derived from a flat schema of scalar and list types."""
    declared = (schema.metadata or {}).get(b"huggingface")
    if declared:  # stored with sorted keys: give them back in column order
        features = json.loads(declared)["info"]["features"]
        return {field.name: features[field.name] for field in schema}
    return {field.name: _feature(field.type) for field in schema}


def _feature(arrow_type: pa.DataType) -> dict:
    if pa.types.is_list(arrow_type):
        return {"feature": _feature(arrow_type.value_type), "_type": "List"}
    return {"dtype": _dtype(arrow_type), "_type": "Value"}


def _dtype(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return f"timestamp[{arrow_type.unit}]"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_floating(arrow_type):
        return f"float{arrow_type.bit_width}"
    return str(arrow_type)


class RowBuffer:
    """Rows of one split of one config; appends `__index_level_0__` when the schema has it."""

    def __init__(
        self, *, folder: Path, split: str, schema: pa.Schema, batch_rows: int, max_bytes: int
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.schema = schema_with_features(schema, features_of(schema))
        self.with_index = schema.names[-1] == INDEX_COLUMN
        self.shards = ShardSet(folder=folder, split=split, schema=self.schema, max_bytes=max_bytes)
        self.batch_rows = batch_rows
        self.rows: list[Sequence] = []
        self.bytes = 0
        self.written = 0

    def add(self, row: Sequence, nbytes: int = 0) -> None:
        self.rows.append(row)
        self.bytes += nbytes
        if len(self.rows) >= self.batch_rows or self.bytes >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        self.rows = []
        self.bytes = 0
        self.write_arrays(
            [
                pa.array(values, type=field.type)
                for values, field in zip(columns, self.schema, strict=False)
            ]
        )

    def write_arrays(self, arrays: list[pa.Array]) -> None:
        """Write ready columns (all but `__index_level_0__`, which is added here)."""
        count = len(arrays[0])
        if count == 0:
            return
        if self.with_index:
            arrays = [*arrays, pa.array(range(self.written, self.written + count), pa.int64())]
        self.shards.write(pa.Table.from_arrays(arrays, schema=self.schema))
        self.written += count

    def close(self) -> list[Shard]:
        self.flush()
        return self.shards.close()

    def abort(self) -> None:
        self.shards.abort()


class ConsensusRowBuffer(RowBuffer):
    """A shard set of pair rows: each batch gets its pairs' consensus columns
    (exports.consensus.FIELDS) on the way out, oriented to the first of `uid_columns`."""

    def __init__(
        self, *, consensus: "PairConsensus", uid_columns: tuple[str, str], **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.consensus = consensus
        self.uid_columns = tuple(self.schema.get_field_index(name) for name in uid_columns)

    def write_arrays(self, arrays: list[pa.Array]) -> None:
        first, second = self.uid_columns
        extra = self.consensus.columns(arrays[first], arrays[second])
        super().write_arrays([*arrays, *extra])


def close_buffers(
    *, folder: Path, buffers: dict[tuple[str, str], RowBuffer]
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, list[str]]], dict[str, dict]]:
    """Close every (config, split) buffer: rows per split, data files per split (splits
    without rows left out: `datasets` refuses them) and dataset_info per config."""
    rows: dict[str, dict[str, int]] = {}
    configs: dict[str, dict[str, list[str]]] = {}
    info: dict[str, dict] = {}
    for (config, split), buffer in buffers.items():
        shards = buffer.close()
        rows.setdefault(config, {})[split] = sum(s.rows for s in shards)
        configs.setdefault(config, {})
        entry = info.setdefault(config, {"schema": buffer.schema, "splits": []})
        if not shards:
            continue
        names = [s.path.relative_to(folder).as_posix() for s in shards]
        configs[config][split] = names
        entry["splits"].append(
            {
                "name": split,
                "num_bytes": sum(s.num_bytes for s in shards),
                "num_examples": rows[config][split],
            }
        )
    return rows, configs, info


@contextmanager
def removed_on_error(buffers: dict[tuple[str, str], RowBuffer]) -> Iterator[None]:
    """Abort every buffer, removing its partial shards, when the block raises."""
    try:
        yield
    except BaseException:
        for buffer in buffers.values():
            buffer.abort()
        raise


def format_result(
    *, folder: Path, buffers: dict[tuple[str, str], RowBuffer], tally, extra_counts: dict
) -> FormatResult:
    """Close the buffers and describe what they wrote."""
    rows, configs, info = close_buffers(folder=folder, buffers=buffers)
    return FormatResult(
        tally=tally, rows=rows, configs=configs, dataset_info=info, extra_counts=extra_counts
    )
