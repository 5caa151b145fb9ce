"""The code shipped inside registered models (ml_platform/models/portable) stands on its own: it imports no
other part of the platform, so a model loads where only its own requirements are installed; and a model
ships exactly the portable modules it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_platform.models import portable, shipping
from ml_platform.models.portable import encoders, torch_modules
from ml_platform_tests.unit.test_import_graph import imported_names

PORTABLE = Path(portable.__file__).parent


def test_portable_modules_import_nothing_of_the_platform_beyond_their_package() -> None:
    """Lazy imports inside functions count: they would fail at the first call in a consumer's process."""
    modules = sorted(PORTABLE.glob("*.py"))
    assert {path.name for path in modules} >= {"__init__.py", "encoders.py", "torch_modules.py", "text.py"}
    outside = sorted(
        f"{path.relative_to(PORTABLE.parents[2])}: {name}"
        for path in modules
        for name in imported_names(path)
        if name.split(".")[0] == "ml_platform" and not f"{name}.".startswith(f"{portable.__name__}.")
    )
    assert outside == [], "portable modules may import only third-party packages and each other"


def test_a_model_ships_exactly_the_portable_modules_it_is_given() -> None:
    with shipping.portable_code(encoders, torch_modules) as code_paths:
        assert code_paths is not None and len(code_paths) == 1
        root = Path(code_paths[0])
        shipped = sorted(str(path.relative_to(root.parent)) for path in root.rglob("*") if path.is_file())
    assert shipped == [
        "ml_platform/models/portable/__init__.py",
        "ml_platform/models/portable/encoders.py",
        "ml_platform/models/portable/torch_modules.py",
    ]  # no __init__ above: namespace packages
    assert not root.exists(), "the staged copy is removed once the model is logged"
    with shipping.portable_code() as nothing:
        assert nothing is None


def test_only_portable_modules_are_shipped() -> None:
    with (
        pytest.raises(
            ValueError, match=r"ml_platform\.models\.shipping: only modules of ml_platform\.models\.portable"
        ),
        shipping.portable_code(shipping),
    ):
        pass


def test_requirements_pin_the_installed_release() -> None:
    assert shipping.pinned(["numpy"]) == [f"numpy=={__import__('numpy').__version__}"]
    torch_pin = shipping.pinned(["torch"])[0]
    assert torch_pin.startswith("torch==") and "+" not in torch_pin  # a local build tag such as +cpu is dropped
