"""What a registered model carries so that it loads wherever MLflow does, without the platform: the
portable modules its pickled objects name (MLflow `code_paths`) and the exact version of every package
it imports (its `requirements.txt`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import ModuleType

from ml_platform.models import portable

# what each model type imports when it is loaded, beside the modules it ships
SKLEARN_REQUIREMENTS = ("mlflow-skinny", "scikit-learn", "scipy", "skops", "numpy", "pandas")
TORCH_REQUIREMENTS = ("mlflow-skinny", "torch", "cloudpickle", "numpy", "pandas")
TEXT_REQUIREMENTS = (
    "mlflow-skinny",
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "huggingface-hub",
    "safetensors",
    "torch",
    "numpy",
    "pandas",
)


def pinned(distributions: tuple[str, ...] | list[str]) -> list[str]:
    """`name==version` of each distribution as installed here; a local build tag (torch's `+cpu`) is dropped,
    since `==2.13.0` accepts any build of that release and an index names the plain release."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in distributions]


@contextmanager
def portable_code(*modules: ModuleType) -> Iterator[list[str] | None]:
    """`code_paths` for `log_model`: a folder `ml_platform/models/portable/` holding only `modules`, alive until
    the model is logged (None without modules: nothing to ship). `ml_platform` and `ml_platform.models` get no
    `__init__.py`: where the platform is not installed they are namespace packages, and where it is, its own
    package wins."""
    if not modules:
        yield None
        return
    source = Path(portable.__file__).parent
    for module in modules:
        if Path(module.__file__ or "").parent != source:
            raise ValueError(f"{module.__name__}: only modules of {portable.__name__} are shipped with a model")
    with tempfile.TemporaryDirectory(prefix="model-code-") as root:
        target = Path(root, *portable.__name__.split("."))
        target.mkdir(parents=True)
        for path in [source / "__init__.py", *(Path(module.__file__ or "") for module in modules)]:
            shutil.copyfile(path, target / path.name)
        yield [str(Path(root) / portable.__name__.split(".")[0])]
