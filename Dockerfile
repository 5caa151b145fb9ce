# syntax=docker/dockerfile:1
# The ml_platform user-code image (CPU): the Dagster code server, run pods, CPU step pods and the
# MLflow tracking server. Slim, non-root, every Python dependency pinned (deploy/requirements.lock).
#
#   docker build -t ghcr.io/your-org/ml-platform:0.1.0 .
#
# The base image is pinned by digest (the tag moves with every Debian/CPython patch release): a
# rebuild gets exactly these bytes. To take upstream fixes, look up the tag's current digest
# (`docker buildx imagetools inspect python:3.11-slim-bookworm`) and replace it here.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY deploy/requirements.lock deploy/requirements.lock
# The CPU build of torch first (a plain `pip install torch` would pull the multi-GB CUDA build),
# then everything else exactly as locked (--no-deps: nothing unlisted sneaks in; `pip check` below
# proves the set is complete). torch==2.13.0 is then already satisfied by 2.13.0+cpu.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-deps -r deploy/requirements.lock
COPY pyproject.toml README.md ./
# The platform only: the demo package (demo/, synthetic data) stays out of the context, so
# package discovery finds ml_platform alone and the demo's console script is removed.
COPY ml_platform ml_platform
RUN pip install --no-deps . \
 && rm /opt/venv/bin/ml-platform-demo \
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
