# syntax=docker/dockerfile:1
# The ml_platform user-code image (CPU): the Dagster code server, run pods, CPU step pods and the
# MLflow tracking server. Slim, non-root, every Python file checked against the hash-locked
# requirements (deploy/requirements*.lock, `pip install --require-hashes`).
#
# By default it carries scikit-learn use cases only: no torch, no sentence-transformers. EXTRAS adds
# the extras a spec's model.type needs (`torch` for torch_mlp/torch_birnn, `torch text` for
# pretrained_text); a spec needing an extra the image lacks fails at definitions load, naming it.
#
#   docker build -t ghcr.io/your-org/ml-platform:0.1.0 .
#   docker build --build-arg EXTRAS="torch text" -t ghcr.io/your-org/ml-platform-full:0.1.0 .
#
# The base image is pinned by digest (the tag moves with every Debian/CPython patch release): a
# rebuild gets exactly these bytes. To take upstream fixes, look up the tag's current digest
# (`docker buildx imagetools inspect python:3.11-slim-bookworm`) and replace it here.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY deploy/*.lock deploy/
# The runtime lock and each extra's: pip refuses a file whose SHA-256 is not locked and a dependency
# that is not locked. torch's lock names its CPU build (2.13.0+cpu, from the PyTorch CPU index; PyPI's
# torch is the multi-GB CUDA build, whose hash is not in the lock). pip itself first: older pips refuse
# locked requirements with extras in --require-hashes mode. DL3013 cannot see the -r in "$@".
# hadolint ignore=DL3013
RUN pip install --require-hashes -r deploy/requirements-pip.lock \
 && set -- -r deploy/requirements.lock \
 && for extra in ${EXTRAS}; do set -- "$@" -r "deploy/requirements-${extra}.lock"; done \
 && pip install --require-hashes --extra-index-url https://download.pytorch.org/whl/cpu "$@"
COPY pyproject.toml README.md ./
# The platform only: the wheel holds ml_platform alone (pyproject's packages.find), and the demo
# (demo/, synthetic data) stays out of the context too (.dockerignore).
COPY ml_platform ml_platform
RUN pip install --no-deps --no-build-isolation . \
 && pip check

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    ML_PLATFORM_DATA_DIR=/data \
    ML_PLATFORM_ENV=k8s
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /opt/dagster --shell /usr/sbin/nologin app \
 && mkdir -p /opt/dagster/dagster_home /opt/dagster/app /data \
 && chown -R 10001:10001 /opt/dagster /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/dagster/app
USER 10001:10001
EXPOSE 3030
# The Dagster Helm chart runs `dagster api grpc` with its own arguments; this default serves the
# same code location for `docker run`.
CMD ["dagster", "api", "grpc", "--module-name", "ml_platform.definitions", "--attribute", "defs", \
     "--host", "0.0.0.0", "--port", "3030"]
