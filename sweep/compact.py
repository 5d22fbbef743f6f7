"""Compaction of a result set: many small part files of a partition rewritten into few.

A study writes one file per partition every flush (``store.flush_points`` rows or
``store.flush_s`` seconds), so a long study leaves hundreds of small files per partition, and
every later read pays per file. :func:`compact` rewrites a partition directory that holds more
than ``min_files`` files into files of up to ``max_rows`` rows each.

A reader must never see a row twice or miss one, so the old and new files are never both in the
partition directory, and never both absent:

1. the merged files are written into a staging directory under ``DIR/NAME/.tmp/`` (same
   filesystem);
2. staging and partition directories are swapped in one atomic step, ``renameat2(...,
   RENAME_EXCHANGE)`` (Linux >= 3.15, glibc >= 2.28): a directory listing sees either all the old
   files or all the new ones;
3. the old files, now in the staging directory, are deleted.

A reader that listed the partition before step 2 and opens a file after step 3 gets "file not
found" (loud, never wrong rows). A crash before step 2 leaves only staging files, after it only
the old files in staging; ``ResultSet.prepare`` removes ``.tmp/`` at the start of every run. Where
the exchange is not available (another OS, a filesystem without it) the partition is left as it
is: more files, but never a moment with duplicates.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COMPACT_MIN_FILES = 16
"""Compact a partition holding more files than this (estimate: below it, per-file cost on read
is a few milliseconds in all)."""

COMPACT_MAX_ROWS = 1_000_000
"""Rows per compacted file (estimate: ~150 MB of Arrow memory at this schema's ~35 columns, so
neither the writer nor a reader of one file needs much memory)."""

ROW_GROUP_ROWS = 128 * 1024
"""Rows buffered before a row group is written (estimate: bounds the compactor's memory to a
few tens of MB while keeping row groups large enough for fast scans)."""

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # <linux/fs.h>


def exchange(a: Path, b: Path) -> None:
    """Atomically swap the paths ``a`` and ``b`` (both must exist). OSError if unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(a))
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def compact_partition(
    partition: Path,
    schema: pa.Schema,
    staging_root: Path,
    max_rows: int = COMPACT_MAX_ROWS,
) -> bool:
    """Rewrite every ``*.parquet`` of ``partition`` into files of <= ``max_rows`` rows, atomically.

    Returns False (and changes nothing) if the atomic directory exchange is unavailable.
    """
    files = sorted(partition.glob("*.parquet"))
    staging = staging_root / f"compact-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        _merge(files, schema, staging, max_rows)
        # Anything in the partition that is not a part file (none today) moves along unchanged.
        for other in partition.iterdir():
            if other.suffix != ".parquet":
                os.link(other, staging / other.name)
        try:
            exchange(staging, partition)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
                return False
            raise
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the new files if not swapped, else the old


def _merge(files: list[Path], schema: pa.Schema, out_dir: Path, max_rows: int) -> None:
    writer: pq.ParquetWriter | None = None
    rows_in_file = 0
    pending: list[pa.Table] = []
    pending_rows = 0

    def write_pending() -> None:
        nonlocal writer, rows_in_file, pending, pending_rows
        if not pending:
            return
        table = pa.concat_tables(pending)
        pending, pending_rows = [], 0
        offset = 0
        while offset < table.num_rows:
            if writer is None or rows_in_file >= max_rows:
                if writer is not None:
                    writer.close()
                name = out_dir / f"part-{uuid.uuid4().hex}.parquet"
                writer, rows_in_file = pq.ParquetWriter(name, schema), 0
            take = min(table.num_rows - offset, max_rows - rows_in_file)
            writer.write_table(table.slice(offset, take), row_group_size=ROW_GROUP_ROWS)
            rows_in_file += take
            offset += take

    for path in files:
        table = pq.read_table(path, schema=schema)
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= ROW_GROUP_ROWS:
            write_pending()
    write_pending()
    if writer is not None:
        writer.close()


def partition_dirs(points_dir: Path) -> list[Path]:
    """The partition directories under ``points_dir`` (``*/*``): the unit compaction swaps."""
    return sorted(p for p in points_dir.glob("*/*") if p.is_dir())


def compact(
    points_dir: Path,
    schema: pa.Schema,
    staging_root: Path,
    min_files: int = COMPACT_MIN_FILES,
    max_rows: int = COMPACT_MAX_ROWS,
) -> tuple[int, int]:
    """Compact every partition directory (``*/*`` under ``points_dir``) with > ``min_files`` files.

    Returns (files before, files after) over the partitions it compacted.
    """
    before = after = 0
    if not points_dir.is_dir():
        return 0, 0
    for partition in partition_dirs(points_dir):
        count = sum(1 for _ in partition.glob("*.parquet"))
        if count <= min_files:
            continue
        if compact_partition(partition, schema, staging_root, max_rows):
            before += count
            after += sum(1 for _ in partition.glob("*.parquet"))
    return before, after


__all__ = ["COMPACT_MIN_FILES", "compact", "compact_partition", "exchange", "partition_dirs"]
