"""Partitioned Parquet storage: one file per asset partition, ranges read in one call.

`DataLake` is the store the gated assets write through, one day at a time, so a
range backfill of a year never holds the year in memory and a failed day never
overwrites the good file it would replace. `LakeIOManager` stores the
unpartitioned asset values (training set, model summary) in the same lake.
Paths go through fsspec, so `s3://` and other object stores work the same as
local directories.
"""

import errno
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import dagster as dg
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pydantic import PrivateAttr

# Rows per Parquet row group: pyarrow's default, so a day written in batches (`write_batches`) is byte-identical
# to the same day written whole, and a reader holds one row group's batch at a time (`iter_batches`).
ROW_GROUP_ROWS = 1024 * 1024
STATE_KEPT_S = 86_400  # a superseded state stays readable a day: a rewound or earlier cursor still finds it


class DataLake(dg.ConfigurableResource[Any]):
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
        table = plain_strings(pa.Table.from_pandas(frame, preserve_index=False))
        return self._write_atomically(self.partition_path(asset_key, partition), lambda f: pq.write_table(table, f))

    def write_batches(self, asset_key: dg.AssetKey, partition: str, batches: Iterable[pd.DataFrame]) -> int:
        """Write (or atomically replace) one partition's file from a day's frames in order, holding about one row
        group at a time; the rows written. Row groups of ROW_GROUP_ROWS whatever the batches' sizes, the schema and
        pandas metadata the first batch's: the same bytes as `write_partition` of the concatenated frames."""
        path = self.partition_path(asset_key, partition)
        rows = 0

        def write(handle: Any) -> None:
            nonlocal rows
            writer: pq.ParquetWriter | None = None
            pending: list[pa.Table] = []
            pending_rows = 0
            for number, frame in enumerate(batches):
                table = plain_strings(pa.Table.from_pandas(frame, preserve_index=False))
                if writer is None:
                    writer = pq.ParquetWriter(handle, table.schema)
                elif not table.schema.equals(writer.schema):
                    table = _as_schema(table, writer.schema, f"{path}: batch {number} of partition {partition}")
                pending.append(table)
                rows += len(table)
                pending_rows += len(table)
                if pending_rows >= ROW_GROUP_ROWS:
                    pending = _write_full_row_groups(writer, pa.concat_tables(pending))
                    pending_rows %= ROW_GROUP_ROWS  # what _write_full_row_groups left
            if writer is None:
                raise ValueError(f"{path}: no batch to write for partition {partition} (expected at least one frame)")
            if pending or rows == 0:  # the last, partial row group (an empty day: its schema alone, as write_table)
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
            writer.close()

        self._write_atomically(path, write)
        return rows

    def iter_batches(
        self,
        asset_key: dg.AssetKey,
        partition: str,
        columns: Sequence[str] | None = None,
        batch_rows: int = ROW_GROUP_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """One partition's rows in order, `batch_rows` (a row group) at a time, typed as `read` types them."""
        fs, _ = self._fs()
        path = self.partition_path(asset_key, partition)
        if not fs.exists(path):
            raise FileNotFoundError(f"{asset_key.to_user_string()}: partitions not materialized: {[partition]}")
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            wanted = list(columns) if columns else None
            if parquet.metadata.num_rows == 0:  # no row group to iterate: the typed empty frame
                yield parquet.read(columns=wanted).to_pandas()
                return
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                yield pa.Table.from_batches([batch]).to_pandas(split_blocks=True, self_destruct=True)

    def write_text(self, asset_key: dg.AssetKey, partition: str | None, text: str, suffix: str = "md") -> str:
        """Write (or atomically replace) one partition's text file (a report)."""
        payload = text.encode()
        return self._write_atomically(self.partition_path(asset_key, partition, suffix), lambda f: f.write(payload))

    def write_json(self, asset_key: dg.AssetKey, value: Any) -> str:
        payload = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        return self._write_atomically(self.partition_path(asset_key, None, "json"), lambda f: f.write(payload))

    def write_state(self, name: str, value: Any, keep: Sequence[str | None] = ()) -> str:
        """Store a JSON value once as `_state/<name>/<content hash>.json` and return the hash. For state too large
        for a sensor's cursor, which Dagster writes into every tick: the cursor names the file, and a tick that
        fails after writing it leaves the cursor on a file that is still there. Other states of `name` older
        than STATE_KEPT_S are removed, except those in `keep` (the one the current cursor names)."""
        payload = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(payload).hexdigest()
        fs, root = self._fs()
        directory = f"{root.rstrip('/')}/_state/{name}"
        if not fs.exists(f"{directory}/{digest}.json"):
            self._write_atomically(f"{directory}/{digest}.json", lambda f: f.write(payload))
        kept = {f"{directory}/{key}.json" for key in (*keep, digest) if key}
        for path in fs.ls(directory, detail=False):
            if (
                path.endswith(".json")
                and path not in kept
                and fs.modified(path).timestamp() < time.time() - STATE_KEPT_S
            ):
                _remove_if_present(fs, path)
        return digest

    def read_state(self, name: str, digest: str) -> Any | None:
        """The value `write_state` stored under that hash; None when it is not there (removed, or another lake)."""
        fs, root = self._fs()
        path = f"{root.rstrip('/')}/_state/{name}/{digest}.json"
        if not fs.exists(path):
            return None
        with fs.open(path, "rb") as handle:
            return json.loads(handle.read())

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
        return sorted(
            name[: -len(".parquet")] for name in names if name.endswith(".parquet") and name != "__all__.parquet"
        )

    def modified_times(self, asset_key: dg.AssetKey) -> dict[str, float]:
        """Each partition's last write, as a POSIX timestamp."""
        fs, _ = self._fs()
        return {
            day: fs.modified(self.partition_path(asset_key, day)).timestamp()
            for day in self.existing_partitions(asset_key)
        }

    def read(
        self,
        asset_key: dg.AssetKey,
        partitions: Sequence[str] | None,
        columns: Sequence[str] | None = None,
        missing_ok: bool = False,
        categories: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Read partitions (None: the unpartitioned file) in one pyarrow dataset scan. `categories`: string
        columns read straight from Parquet's dictionary pages as pandas categoricals (no string per row)."""
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
        file_format = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(dictionary_columns=set(categories)))
        dataset = pads.dataset(present, format=file_format, filesystem=fs)
        table = dataset.to_table(columns=list(columns) if columns else None)
        return table.to_pandas(split_blocks=True, self_destruct=True)  # Arrow buffers freed as converted: no 2x peak

    def row_counts(self, asset_key: dg.AssetKey, partitions: Sequence[str]) -> dict[str, int]:
        """Each existing partition's row count, from its Parquet footer (no data read)."""
        fs, _ = self._fs()
        counts = {}
        for partition in partitions:
            path = self.partition_path(asset_key, partition)
            if fs.exists(path):
                counts[partition] = pq.read_metadata(path, filesystem=fs).num_rows
        return counts

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
PERMANENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
    }
)


def plain_strings(table: pa.Table) -> pa.Table:
    """The table with every string column recorded as a plain (object) pandas column, whatever pandas dtype it
    was written from: a frame read with Arrow-backed strings (the raw ingest's, see `sources.files`) is stored
    without converting a string per row, and every lake reader still gets the same dtypes back."""
    metadata = table.schema.metadata or {}
    if b"pandas" not in metadata:
        return table
    pandas_metadata = json.loads(metadata[b"pandas"])
    arrow_backed = [
        c for c in pandas_metadata["columns"] if c["pandas_type"] == "unicode" and c["numpy_type"] != "object"
    ]
    if not arrow_backed:
        return table
    for column in arrow_backed:
        column.update(numpy_type="object", metadata=None)
    return table.replace_schema_metadata({**metadata, b"pandas": json.dumps(pandas_metadata).encode()})


def _write_full_row_groups(writer: pq.ParquetWriter, table: pa.Table) -> list[pa.Table]:
    """Write every whole ROW_GROUP_ROWS slice of `table`; the rest, to be continued by the next batches."""
    whole = len(table) - len(table) % ROW_GROUP_ROWS
    for start in range(0, whole, ROW_GROUP_ROWS):
        writer.write_table(table.slice(start, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
    return [table.slice(whole)] if whole < len(table) else []


def _as_schema(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """A later batch in the first batch's schema (an all-null column converts as Arrow's null type); a batch whose
    columns differ is an error naming them."""
    if table.schema.names != schema.names:
        raise ValueError(f"{where} has columns {table.schema.names}, expected the first batch's {schema.names}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(f"{where} does not convert to the first batch's types: {error}") from error


def lake_write_error(path: str, error: OSError) -> Exception:
    """The cause, with errno and path; permanent errors are a Failure that is never retried, others stay an
    OSError so the step's retry policy tries again."""
    code = errno.errorcode.get(error.errno or 0, "no errno")
    cause = f"cannot write {path}: [{code}] {error.strerror or error}"
    if error.errno in PERMANENT_ERRNOS or isinstance(error, (PermissionError, FileNotFoundError, NotADirectoryError)):
        return dg.Failure(
            description=f"{cause} (permanent: not retried; earlier files are unchanged)",
            metadata={"path": path, "errno": code},
            allow_retries=False,
        )
    return OSError(error.errno, f"{cause} (transient: retried)")


def _remove_if_present(fs: Any, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:  # the write's own error is the one to report
        pass


@runtime_checkable
class StoredAsJson(Protocol):
    """A typed asset value the IO manager stores as JSON (`to_json`); an input annotated with its class is read
    back through that class's `from_json`, which raises ValueError for a stored value it cannot read."""

    def to_json(self) -> dict[str, Any]: ...


class LakeIOManager(dg.ConfigurableIOManager):
    """The lake behind Dagster's IO-manager interface, for unpartitioned asset values: DataFrames as
    Parquet (the training set), dicts and `StoredAsJson` values as JSON (the model's summary).

    Partitioned assets do not go through it: they write day by day through `DataLake`, each day only
    after its gate admitted it, so a failed day never replaces the good file.
    """

    lake: DataLake

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        key = context.asset_key
        if context.has_asset_partitions:
            raise dg.Failure(
                f"{key.to_user_string()}: partitioned assets write their days through DataLake "
                "after their gate; the IO manager stores unpartitioned values only"
            )
        if isinstance(obj, pd.DataFrame):  # first: a DataFrame has a `to_json` too
            context.add_output_metadata({"path": self.lake.write_partition(key, None, obj), "rows": len(obj)})
            return
        if isinstance(obj, StoredAsJson):
            obj = obj.to_json()
        if not isinstance(obj, dict):
            raise dg.Failure(
                f"{key.to_user_string()}: expected a pandas DataFrame, a dict or a StoredAsJson value, "
                f"got {type(obj).__name__}"
            )
        context.add_output_metadata({"path": self.lake.write_json(key, obj)})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if context.has_asset_partitions:
            raise dg.Failure(f"{key.to_user_string()}: read partitioned assets through DataLake.read")
        if not self.lake.has_json(key):
            return self.lake.read(key, None)
        stored, wanted = self.lake.read_json(key), context.dagster_type.typing_type
        from_json = getattr(wanted, "from_json", None)
        if from_json is None:
            return stored
        try:
            return from_json(stored)
        except ValueError as error:
            raise dg.Failure(
                f"{key.to_user_string()}: the stored value at {self.lake.partition_path(key, None, 'json')} is not a "
                f"{wanted.__name__} this version reads ({error}); materialize {key.to_user_string()} again",
                allow_retries=False,
            ) from None
