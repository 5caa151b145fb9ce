"""A spec whose model type needs an extra that is not installed fails when the definitions load, naming
the spec file, model.type and the `pip install` to run; with the extras installed the shipped specs load."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from ml_platform import extras
from ml_platform.definitions import load_specs
from ml_platform.settings import SHIPPED_SPECS_DIR, SettingError, Settings
from ml_platform.spec import SpecError


def test_the_shipped_specs_load_where_every_extra_is_installed() -> None:
    assert {spec.model.type for spec in load_specs()} >= set(extras.EXTRA_OF_MODEL_TYPE)


@pytest.mark.parametrize(
    ("absent", "spec_file", "model_type", "extra"),
    [
        ("torch", "fraud.yaml", "torch_mlp", "torch"),
        ("sentence_transformers", "news.yaml", "pretrained_text", "text"),
    ],
)
def test_a_model_type_whose_extra_is_missing_fails_naming_spec_field_and_install(
    monkeypatch: pytest.MonkeyPatch,
    absent: str,
    spec_file: str,
    model_type: str,
    extra: str,
) -> None:
    monkeypatch.setattr(extras, "find_spec", lambda module: None if module == absent else find_spec(module))
    with pytest.raises(SpecError) as refused:
        load_specs()
    message = str(refused.value)
    assert message.startswith(f"{SHIPPED_SPECS_DIR / spec_file}: model.type: {model_type} needs the '{extra}' extra")
    assert f"pip install 'ml_platform[{extra}]'" in message and f"no module {absent}" in message


def test_an_image_without_torch_loads_its_own_sklearn_specs_when_the_shipped_examples_are_left_out(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    monkeypatch.setattr(extras, "find_spec", lambda module: None if module == "torch" else find_spec(module))
    with pytest.raises(SpecError, match="ML_PLATFORM_SHIPPED_USE_CASES=none"):
        load_specs()
    (tmp_path / "mine.yaml").write_text(
        (SHIPPED_SPECS_DIR / "churn.yaml").read_text().replace("name: churn", "name: mine")
    )
    only_mine = Settings.from_env({"ML_PLATFORM_SHIPPED_USE_CASES": "none", "ML_PLATFORM_SPECS_DIR": str(tmp_path)})
    assert [spec.name for spec in load_specs(only_mine)] == ["mine"]
    churn_and_mine = Settings.from_env(
        {"ML_PLATFORM_SHIPPED_USE_CASES": "churn", "ML_PLATFORM_SPECS_DIR": str(tmp_path)}
    )
    assert [spec.name for spec in load_specs(churn_and_mine)] == ["churn", "mine"]


@pytest.mark.parametrize("value", ["churn,nope", ","])
def test_an_unknown_shipped_use_case_is_refused_naming_the_variable_and_the_choices(value: str) -> None:
    with pytest.raises(
        SettingError, match=r"ML_PLATFORM_SHIPPED_USE_CASES must be 'all', 'none' or .*churn, fraud, news, prices"
    ):
        Settings.from_env({"ML_PLATFORM_SHIPPED_USE_CASES": value})
