"""A local cache of loaded registry models, so a run does not pay MLflow's model load again and again.

Loading a registered scikit-learn model through MLflow imports skops, which walks every scikit-learn
module (and torch) at import: about 5 s per run, most of the time a landed day waits for its scores.
The cache keeps the loaded `PyFuncModel` (signature enforcement included) as a pickle, keyed by what the
registry says the version is (tracking store, name, version, run, source, creation time): a version
re-registered elsewhere never matches an old entry. A missing entry is a miss, never a missing model.

Threat model. Unpickling runs whatever code the pickle names, so whoever can write an entry can run code
in the next process that reads it. The cache therefore lives on storage private to its reader by default
(the user's cache directory; on Kubernetes a pod's own emptyDir, settings.py), and every entry is
verified before a single byte of it is unpickled. An attacker is assumed able to write anything in the
cache directory: change bytes, plant any pickle, copy an entry or its metadata from another version. The
check therefore cannot rest on anything stored there (a hash next to the pickle is rewritten with it):
each entry carries an HMAC-SHA256, under a key the attacker does not hold, of the registry identity, the
SHA-256 of the registry artifact the model was loaded from (its downloaded files) and the pickle itself.
The key is `ML_PLATFORM_MODEL_CACHE_KEY` (from a Kubernetes Secret: the same in every platform pod, so a
shared cache stays usable across pods, and never logged), else a random key the platform creates once in
a 0600 file outside the cache (`Settings.model_cache_key_file`: per user locally, per pod on Kubernetes).
What the check cannot stop: an attacker holding the key (one who runs code in a platform pod already
runs code there), or one putting back an entry the platform wrote earlier for the same version (the same
model). An entry that does not verify, names another version or cannot be read is refused,
never unpickled; the refusal is a warning (in the run's log inside a step, naming the entry and why) and
the model loads from the registry and replaces the entry.

The artifact is hashed when the entry is written and not downloaded again when it is read: the HMAC
already proves the platform wrote the entry from that artifact, and the registry identity pins the version.
Verification costs one HMAC pass over the pickle (milliseconds for a forest), not the seconds of a load.
Beyond MAX_CACHE_BYTES the least recently used entries are deleted when an entry is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pickle
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

# Inside a step the warning also lands in the run's event log (Dagster captures its built-in loggers).
LOG = dg.get_dagster_logger("model_cache")
KEY_ENV = "ML_PLATFORM_MODEL_CACHE_KEY"
MIN_KEY_LENGTH = 32  # characters of the key: at least 128 bits however it was written (hex, base64)
ENTRY_SUFFIX = ".model"
MAX_CACHE_BYTES = 4 * 2**30  # least recently used entries go beyond this: one user cache serves every store


class UnverifiedEntry(Exception):
    """A cache entry that must not be unpickled; the message says why."""


def load_through_cache(
    cache_dir: Path, key: CacheKey, identity: dict[str, str], download: Callable[[], Path], load: Callable[[Path], Any]
) -> Any:
    """The model of `identity` from a verified cache entry, else `load(download())` written to the cache.

    `download` fetches the version's registry artifact to a local directory (hashed into the entry);
    `load` turns that directory into the model."""
    entry = cache_dir / (hashlib.sha256(_canonical(identity)).hexdigest()[:32] + ENTRY_SUFFIX)
    try:
        secret = key.resolve()
    except OSError as error:  # no key file: the cache is off for this load, the run goes on
        LOG.warning(
            "model cache %s not used: its key file %s cannot be read or created: %s", cache_dir, key.file, error
        )
        return load(download())
    try:
        return _read(entry, secret, identity)
    except FileNotFoundError:
        pass
    except UnverifiedEntry as error:
        LOG.warning(
            "model cache entry %s refused, not unpickled (%s); loading %s version %s from the registry",
            entry,
            error,
            identity.get("name"),
            identity.get("version"),
        )
    except Exception as error:  # a verified entry this code can no longer read (an upgrade moved a class)
        LOG.warning(
            "model cache entry %s unreadable (%s: %s); loading %s version %s from the registry",
            entry,
            type(error).__name__,
            error,
            identity.get("name"),
            identity.get("version"),
        )
    artifact = download()
    model = load(artifact)
    try:
        _write(entry, secret, identity, artifact_sha256(artifact), pickle.dumps(model))
        _prune(cache_dir, MAX_CACHE_BYTES)
    except Exception as error:  # an unpicklable model or a full, read-only disk costs speed, not the run
        LOG.warning("model cache entry %s not written (%s: %s)", entry, type(error).__name__, error)
    return model


@dataclass(frozen=True)
class CacheKey:
    """Where the HMAC key comes from: `secret` (the deployment's, KEY_ENV) if given, else `file`, created
    (random, 0600) on first use. The secret is kept out of repr: it never reaches a log."""

    secret: str = field(default="", repr=False)
    file: Path | None = None

    def __post_init__(self) -> None:
        if self.secret and len(self.secret) < MIN_KEY_LENGTH:
            raise ValueError(
                f"{KEY_ENV} must be at least {MIN_KEY_LENGTH} characters (e.g. `openssl rand -hex 32`), "
                f"got {len(self.secret)}"
            )
        if not self.secret and self.file is None:
            raise ValueError(f"the model cache needs a key to verify its entries: {KEY_ENV} or a key file")

    def resolve(self) -> bytes:
        if self.secret or self.file is None:  # no file means a secret (__post_init__)
            return self.secret.encode()
        if not self.file.exists():
            _create_key_file(self.file)
        try:
            return bytes.fromhex(self.file.read_text().strip())
        except ValueError:
            raise ValueError(
                f"{self.file}: expected the model cache key as hex digits (delete the file to "
                "get a new key; entries written under the old one are then reloaded)"
            ) from None


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    with os.fdopen(handle, "w") as stream:
        stream.write(secrets.token_hex(32))
    try:
        os.link(temporary, path)  # whole or not at all; a key another process created first wins
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


def artifact_sha256(directory: Path) -> str:
    """SHA-256 over every file of a downloaded model artifact: relative paths, sizes and contents."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()


def _read(entry: Path, key: bytes, identity: dict[str, str]) -> Any:
    """Unpickles the entry only after its HMAC verifies and it names `identity`."""
    header_line, separator, payload = entry.read_bytes().partition(b"\n")
    try:
        header = json.loads(header_line)
        stored_mac = header.pop("hmac_sha256")
    except (ValueError, KeyError, AttributeError, TypeError):
        raise UnverifiedEntry("no readable header with an HMAC") from None
    if not separator or not hmac.compare_digest(str(stored_mac), _mac(key, header, payload)):
        raise UnverifiedEntry("HMAC does not verify: written without this deployment's key, or changed since")
    if header.get("identity") != identity:
        other = header["identity"]  # verified: the platform wrote it
        raise UnverifiedEntry(f"written for another model version: {other.get('name')} version {other.get('version')}")
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(entry)  # recently used: kept by _prune
    return pickle.loads(payload)  # verified above as written by the platform for this version


def _write(entry: Path, key: bytes, identity: dict[str, str], artifact_digest: str, payload: bytes) -> None:
    """One file, renamed into place: a reader sees a whole entry or none. A JSON header line (identity,
    artifact digest, HMAC), then the pickle."""
    entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    header = {"identity": identity, "artifact_sha256": artifact_digest}
    line = _canonical({**header, "hmac_sha256": _mac(key, header, payload)})
    handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(line + b"\n" + payload)
        os.replace(temporary, entry)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _prune(cache_dir: Path, max_bytes: int) -> None:
    """Delete the least recently used entries until the rest fit in `max_bytes`."""
    entries = []
    for path in cache_dir.glob(f"*{ENTRY_SUFFIX}"):
        try:
            entries.append((path.stat(), path))
        except FileNotFoundError:  # pruned by another process meanwhile
            continue
    total = sum(status.st_size for status, _ in entries)
    for status, path in sorted(entries, key=lambda item: item[0].st_mtime):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= status.st_size


def _mac(key: bytes, header: dict[str, Any], payload: bytes) -> str:
    return hmac.new(key, _canonical(header) + b"\n" + payload, hashlib.sha256).hexdigest()


def _canonical(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace: one byte string per value, and never a newline."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
