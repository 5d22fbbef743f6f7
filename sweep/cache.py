"""The point cache of an output root: point id -> stored row, shared by every study under it.

A point id is a content hash of everything that determines a point's result (names and
resolved parameters, core count, seeds, model version: :mod:`sweep.plan`), so a row computed
once is valid for any study, validation or fit that plans the same id. Layout::

    OUT/.point-cache/model=<MODEL_VERSION>/part-<uuid>.parquet

Rows are kept whole (:data:`sweep.store.POINT_SCHEMA`, ``ok`` rows only). Files are written
under ``OUT/.point-cache/.tmp/`` and renamed into place, so a reader (another study looking
points up while this one writes) sees whole files or none; readers skip files that vanish or
cannot be read. Entries of another model version live in another directory and never match.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exitcore import MODEL_VERSION
from sweep.store import POINT_SCHEMA

CACHE_DIRNAME = ".point-cache"


class PointCache:
    """The cache under ``root`` (an output directory, the ``out=`` of a study)."""

    def __init__(self, root: Path, model_version: str = MODEL_VERSION) -> None:
        self.root = Path(root) / CACHE_DIRNAME
        self.dir = self.root / f"model={model_version}"
        self.tmp_dir = self.root / ".tmp"
        self._buffer: list[pa.Table] = []

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []

    def lookup(self, point_ids: Iterable[str]) -> pa.Table:
        """Cached rows of ``point_ids`` (one per id, the oldest kept), in no particular order."""
        wanted = pa.array(sorted(set(point_ids)), type=pa.string())
        found: list[pa.Table] = []
        if len(wanted):
            for path in self.files():
                try:
                    ids = pq.read_table(path, columns=["point_id"]).column("point_id")
                    mask = pc.is_in(ids, value_set=wanted)
                    if pc.any(mask).as_py():
                        table = pq.read_table(path, schema=POINT_SCHEMA).filter(mask)
                        found.append(table)
                except (pa.ArrowException, OSError):
                    continue  # removed or being replaced: the point is simply not cached
        if not found:
            return POINT_SCHEMA.empty_table()
        table = pa.concat_tables(found)
        _, first = _first_of_each(table.column("point_id").to_pylist())
        return table.take(pa.array(first, type=pa.int64()))

    def add(self, table: pa.Table) -> None:
        """Buffer the ``ok`` rows of ``table``; :meth:`flush` writes them."""
        ok = table.filter(pc.equal(table.column("status"), "ok"))
        if ok.num_rows:
            self._buffer.append(ok.select(POINT_SCHEMA.names).cast(POINT_SCHEMA))

    def flush(self) -> None:
        """Write the buffered rows as one file, atomically."""
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer = []
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.tmp_dir / name
        pq.write_table(table, tmp)
        os.replace(tmp, self.dir / name)


def _first_of_each(ids: list[str]) -> tuple[set[str], list[int]]:
    seen: set[str] = set()
    first = []
    for i, pid in enumerate(ids):
        if pid not in seen:
            seen.add(pid)
            first.append(i)
    return seen, first
