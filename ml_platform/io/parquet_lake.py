"""Partitioned Parquet storage: one file per asset partition, ranges read in one call.

`DataLake` is the store the gated assets write through, one day at a time, so a
range backfill of a year never holds the year in memory and a failed day never
overwrites the good file it would replace. `PartitionedParquetIOManager` puts
the same layout behind Dagster's IO-manager interface for assets that return
DataFrames (including multi-partition outputs of single-run backfills, which
Dagster's built-in IO managers refuse). Paths go through fsspec, so `s3://`
and other object stores work the same as local directories.
"""


import errno
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pydantic import PrivateAttr

PARTITION_COLUMN = "day"


class DataLake(dg.ConfigurableResource):
    """Parquet files under `base_path`: `<asset/key/path>/<partition>.parquet`."""

    base_path: str

    _filesystem: Any = PrivateAttr(default=None)
    _root: str = PrivateAttr(default="")

    def _fs(self) -> tuple[Any, str]:
        if self._filesystem is None:
            self._filesystem, self._root = fsspec.core.url_to_fs(self.base_path)
        return self._filesystem, self._root

    def asset_dir(self, asset_key: dg.AssetKey) -> str:
        _, root = self._fs()
        return "/".join([root.rstrip("/"), *asset_key.path])

    def partition_path(self, asset_key: dg.AssetKey, partition: str | None, suffix: str = "parquet") -> str:
        name = partition if partition is not None else "__all__"
        return f"{self.asset_dir(asset_key)}/{name}.{suffix}"

    def write_partition(self, asset_key: dg.AssetKey, partition: str | None, frame: pd.DataFrame) -> str:
        """Write (or atomically replace) one partition's file."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return self._write_atomically(self.partition_path(asset_key, partition), lambda f: pq.write_table(table, f))

    def write_partitions(
        self, asset_key: dg.AssetKey, frames: Mapping[str, pd.DataFrame] | Iterable[tuple[str, pd.DataFrame]]
    ) -> dict[str, int]:
        """Write many partitions; accepts a mapping or a lazy iterable so memory stays bounded."""
        items = frames.items() if isinstance(frames, Mapping) else frames
        rows: dict[str, int] = {}
        for partition, frame in items:
            self.write_partition(asset_key, partition, frame)
            rows[partition] = len(frame)
        return rows

    def write_json(self, asset_key: dg.AssetKey, value: Any) -> str:
        payload = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        return self._write_atomically(self.partition_path(asset_key, None, "json"), lambda f: f.write(payload))

    def has_json(self, asset_key: dg.AssetKey) -> bool:
        fs, _ = self._fs()
        return fs.exists(self.partition_path(asset_key, None, "json"))

    def read_json(self, asset_key: dg.AssetKey) -> Any:
        fs, _ = self._fs()
        path = self.partition_path(asset_key, None, "json")
        if not fs.exists(path):
            raise FileNotFoundError(f"{asset_key.to_user_string()}: nothing stored yet at {path}")
        with fs.open(path, "rb") as handle:
            return json.loads(handle.read())

    def existing_partitions(self, asset_key: dg.AssetKey) -> list[str]:
        """Partition keys with a file, sorted."""
        fs, _ = self._fs()
        directory = self.asset_dir(asset_key)
        if not fs.exists(directory):
            return []
        names = (path.rsplit("/", 1)[-1] for path in fs.ls(directory, detail=False))
        return sorted(name[: -len(".parquet")] for name in names if name.endswith(".parquet") and name != "__all__.parquet")

    def modified_times(self, asset_key: dg.AssetKey) -> dict[str, float]:
        """Each partition's last write, as a POSIX timestamp."""
        fs, _ = self._fs()
        return {day: fs.modified(self.partition_path(asset_key, day)).timestamp() for day in self.existing_partitions(asset_key)}

    def read(
        self,
        asset_key: dg.AssetKey,
        partitions: Sequence[str] | None,
        columns: Sequence[str] | None = None,
        missing_ok: bool = False,
    ) -> pd.DataFrame:
        """Read partitions (None: the unpartitioned file) in one pyarrow dataset scan."""
        fs, _ = self._fs()
        if partitions is None:
            paths = [self.partition_path(asset_key, None)]
        else:
            paths = [self.partition_path(asset_key, partition) for partition in partitions]
        present = [path for path in paths if fs.exists(path)]
        missing = sorted(set(paths) - set(present))
        if missing and not missing_ok:
            names = [path.rsplit("/", 1)[-1].removesuffix(".parquet") for path in missing]
            raise FileNotFoundError(f"{asset_key.to_user_string()}: partitions not materialized: {names}")
        if not present:
            return pd.DataFrame(columns=list(columns) if columns else None)
        dataset = pads.dataset(present, format="parquet", filesystem=fs)
        return dataset.to_table(columns=list(columns) if columns else None).to_pandas()

    def _write_atomically(self, path: str, write: Any) -> str:
        """Write to a temporary file, then rename over `path`: readers see the old file or the new one.
        A failed write removes its temporary file and leaves the old file as it was."""
        fs, _ = self._fs()
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(temporary, "wb") as handle:
                write(handle)
            fs.mv(temporary, path)
        except BaseException as error:
            _remove_if_present(fs, temporary)
            if isinstance(error, OSError):
                raise lake_write_error(path, error) from error
            raise
        return path


# errnos that another attempt cannot fix (a full or read-only disk, missing rights, a broken lake root)
PERMANENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR,
    errno.EISDIR, errno.EEXIST,
})


def lake_write_error(path: str, error: OSError) -> Exception:
    """The cause, with errno and path; permanent errors are a Failure that is never retried, others stay an
    OSError so the step's retry policy tries again."""
    code = errno.errorcode.get(error.errno or 0, "no errno")
    cause = f"cannot write {path}: [{code}] {error.strerror or error}"
    if error.errno in PERMANENT_ERRNOS or isinstance(error, (PermissionError, FileNotFoundError, NotADirectoryError)):
        return dg.Failure(description=f"{cause} (permanent: not retried; earlier files are unchanged)",
                          metadata={"path": path, "errno": code}, allow_retries=False)
    return OSError(error.errno, f"{cause} (transient: retried)")


def _remove_if_present(fs: Any, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:  # the write's own error is the one to report
        pass


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    """IO manager over `DataLake`: partition ranges in one call, one file per partition.

    A partitioned output is a DataFrame with a `day` column (or a mapping of
    partition key to DataFrame); each partition of the step's range is written
    to its own file, replacing any earlier one, so re-materializing a day never
    duplicates it. Unpartitioned DataFrames go to one Parquet file and dicts to
    JSON. Inputs come back as one DataFrame for the whole upstream range.
    """

    lake: DataLake

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key = context.asset_key
        if isinstance(obj, dict) and not context.has_asset_partitions:
            context.add_output_metadata({"path": self.lake.write_json(key, obj)})
            return
        if not context.has_asset_partitions:
            frame = _require_frame(obj, key)
            context.add_output_metadata({"path": self.lake.write_partition(key, None, frame), "rows": len(frame)})
            return
        partitions = list(context.asset_partition_keys)
        frames = obj if isinstance(obj, Mapping) else _split_by_partition(_require_frame(obj, key), partitions, key)
        unexpected = sorted(set(frames) - set(partitions))
        if unexpected:
            raise dg.Failure(f"{key.to_user_string()}: output holds partitions {unexpected} outside the run's range")
        empty = _require_frame(next(iter(frames.values())), key).iloc[0:0] if frames else pd.DataFrame()
        rows = self.lake.write_partitions(key, ((p, frames.get(p, empty)) for p in partitions))
        context.add_output_metadata({"rows": sum(rows.values()), "partitions_written": len(rows)})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if not context.has_asset_partitions:
            return self.lake.read_json(key) if self.lake.has_json(key) else self.lake.read(key, None)
        return self.lake.read(key, list(context.asset_partition_keys), missing_ok=True)


def _require_frame(obj: Any, key: dg.AssetKey) -> pd.DataFrame:
    if not isinstance(obj, pd.DataFrame):
        raise dg.Failure(f"{key.to_user_string()}: expected a pandas DataFrame output, got {type(obj).__name__}")
    return obj


def _split_by_partition(frame: pd.DataFrame, partitions: list[str], key: dg.AssetKey) -> dict[str, pd.DataFrame]:
    if PARTITION_COLUMN not in frame.columns:
        if len(partitions) == 1:
            return {partitions[0]: frame}
        raise dg.Failure(
            f"{key.to_user_string()}: a multi-partition output needs a '{PARTITION_COLUMN}' column "
            f"naming each row's partition (range {partitions[0]}..{partitions[-1]})"
        )
    return {str(day): group for day, group in frame.groupby(PARTITION_COLUMN, sort=True)}
