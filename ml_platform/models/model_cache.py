"""A local cache of loaded registry models, so a run does not pay MLflow's model load again and again.

Loading a registered scikit-learn model through MLflow imports skops, which walks every scikit-learn
module (and torch) at import: about 5 s per run, most of the time a landed day waits for its scores.
The cache keeps the loaded `PyFuncModel` (signature enforcement included) as a pickle written by this
platform on local disk, keyed by what the registry says the version is (tracking store, name,
version, run, source, creation time): a version re-registered elsewhere never matches an old entry.
A cache entry that cannot be read is a miss, never a missing model: the registry answers instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)


def load_through_cache(cache_dir: Path, identity: dict[str, str], load: Callable[[], Any]) -> Any:
    """The model of `identity` from the cache, else `load()`-ed and written to the cache."""
    entry = cache_dir / hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    try:
        stored = json.loads((entry / "identity.json").read_text())
        if stored == identity:
            with (entry / "model.pkl").open("rb") as handle:
                return pickle.load(handle)
    except FileNotFoundError:
        pass
    except Exception as error:  # a damaged entry: load from the registry and replace it
        LOG.warning("model cache entry %s unreadable (%s: %s); loading from the registry", entry, type(error).__name__, error)
    model = load()
    try:
        _write(entry, identity, pickle.dumps(model))
    except OSError as error:  # a full or read-only disk costs speed, not the run
        LOG.warning("model cache %s not written: %s", entry, error)
    return model


def _write(entry: Path, identity: dict[str, str], payload: bytes) -> None:
    """Model first, identity last, each renamed into place: a reader sees a whole entry or none."""
    entry.mkdir(parents=True, exist_ok=True)
    for name, content in (("model.pkl", payload), ("identity.json", json.dumps(identity, sort_keys=True).encode())):
        handle, temporary = tempfile.mkstemp(dir=entry, prefix=f".{name}.")
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, entry / name)
