"""A spec whose model type needs an extra that is not installed fails when the definitions load, naming
the spec file, model.type and the `pip install` to run; with the extras installed the shipped specs load."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from ml_platform import extras
from ml_platform.definitions import load_specs
from ml_platform.settings import SHIPPED_SPECS_DIR
from ml_platform.spec import SpecError


def test_the_shipped_specs_load_where_every_extra_is_installed() -> None:
    assert {spec.model.type for spec in load_specs()} >= set(extras.EXTRA_OF_MODEL_TYPE)


@pytest.mark.parametrize(("absent", "spec_file", "model_type", "extra"), [
    ("torch", "fraud.yaml", "torch_mlp", "torch"),
    ("sentence_transformers", "news.yaml", "pretrained_text", "text"),
])
def test_a_model_type_whose_extra_is_missing_fails_naming_spec_field_and_install(
    monkeypatch: pytest.MonkeyPatch, absent: str, spec_file: str, model_type: str, extra: str,
) -> None:
    monkeypatch.setattr(extras, "find_spec", lambda module: None if module == absent else find_spec(module))
    with pytest.raises(SpecError) as refused:
        load_specs()
    message = str(refused.value)
    assert message.startswith(f"{SHIPPED_SPECS_DIR / spec_file}: model.type: {model_type} needs the '{extra}' extra")
    assert f"pip install 'ml_platform[{extra}]'" in message and f"no module {absent}" in message
