"""The registered form of a `pretrained_text` model, logged as MLflow "models from code": MLflow stores
this file with the model and runs it when the model is loaded, instead of unpickling an object. The model
itself is its logged config (classes, descriptions, encoder) read by `ZeroShotTextModel.load_context`;
the class comes from the portable code shipped with the model."""

import mlflow

from ml_platform.models.portable.text import ZeroShotTextModel

mlflow.models.set_model(ZeroShotTextModel())
