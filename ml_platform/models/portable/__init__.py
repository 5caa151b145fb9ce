"""The code a registered model runs when it is loaded, shipped inside the model (MLflow `code_paths`).

A consumer without the platform (`mlflow models serve`, `mlflow models build-docker`, another team's
batch job) loads a registered model from its own files and its own `requirements.txt`. So each module
here imports only third-party packages pinned in the model's requirements and, at most, other modules of
this package: never the rest of `ml_platform` (a unit test holds every module to that). The registered
model names these modules' classes by their full path (`ml_platform.models.portable....`); the model
carries them under `code/ml_platform/models/portable/`, where the platform, once installed, takes over.
"""
