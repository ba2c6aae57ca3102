# syntax=docker/dockerfile:1
# Spillover: one image, two programs (spillover-extender, spillover-autoscaler).
#   docker build -t spillover:dev .
#   docker run --rm --read-only --tmpfs /tmp --tmpfs /var/cache/numba spillover:dev \
#       spillover-extender serve --port 8888
# Runs as a non-root user with a read-only root filesystem: /tmp and /var/cache/numba are the
# only writable paths (emptyDir volumes in manifests/). The autoscaler compiles its numba kernels
# at start (autoscaler.kernels.warm_up(), before /readyz turns green) into NUMBA_CACHE_DIR.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the project's wheel and every dependency's wheel --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extender ./extender
COPY autoscaler ./autoscaler
RUN pip wheel --wheel-dir /wheels .

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/var/cache/numba \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/tmp
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels spillover \
    && groupadd --system --gid 10001 spillover \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin spillover \
    && mkdir -p /var/cache/numba \
    && chown 10001:10001 /var/cache/numba
USER 10001:10001
EXPOSE 8888 8443 8080
# No ENTRYPOINT wrapper: the manifests name the program (`command: [spillover-extender]`),
# and plain `docker run IMAGE` serves the extender on its default port.
CMD ["spillover-extender", "serve", "--host", "0.0.0.0"]
