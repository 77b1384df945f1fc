# One image for the optistudy service (`optistudy serve`, the default command), for Ray head
# and worker nodes (`ray start --head ... --block`, `ray start --address=... --block`) and
# for an MLflow tracking server (`mlflow server ...`); service/deploy/compose.yaml runs all
# of them. Nothing secret is baked in: tokens and passwords come from the environment.
#
#   docker build -t optistudy .                                   # CPU torch (default)
#   docker build --build-arg TORCH_VARIANT=cu128 -t optistudy:cu128 .   # CUDA 12.8 torch

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# PyPI's Linux torch wheel is the CUDA build (several GB); the default is the CPU build of
# the same pinned version from PyTorch's own index. cu126, cu128, ... select a CUDA build.
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, in its own layer: the largest download, and it changes least often. The
# project pins torch==2.13.0, which the installed 2.13.0+cpu (or +cu128) satisfies.
RUN pip install --no-cache-dir torch==2.13.0 --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY optimizers/ optimizers/
COPY models/ models/
COPY studies/ studies/
COPY service/ service/
# postgres: the PostgreSQL driver (psycopg); cluster: Ray's dashboard and job server, which
# a Ray head needs to accept Ray Jobs from the service.
RUN pip install --no-cache-dir "/src[postgres,cluster]"


FROM ${PYTHON_IMAGE} AS runtime

# A numeric, non-root user (uid 1000), so that runAsNonRoot-style checks can verify it.
RUN groupadd --gid 1000 optistudy \
    && useradd --uid 1000 --gid optistudy --create-home --shell /usr/sbin/nologin optistudy \
    && mkdir /data \
    && chown optistudy:optistudy /data

COPY --from=builder /opt/venv /opt/venv

# OPTISTUDY_HOST: the service binds to 127.0.0.1 by default; in a container it must listen
# on the container's interfaces (publish the port deliberately, see README "Deployment").
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPTISTUDY_HOME=/data \
    OPTISTUDY_HOST=0.0.0.0 \
    OPTISTUDY_PORT=8000 \
    RAY_USAGE_STATS_ENABLED=0

USER 1000:1000
WORKDIR /home/optistudy
VOLUME ["/data"]
EXPOSE 8000

# For the service; Ray and MLflow containers override or disable it (compose.yaml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('OPTISTUDY_PORT', '8000') + '/health', timeout=4)"]

CMD ["optistudy", "serve"]
