# One image for every replog node (master or secondary); one node per container.
#
# Base image:
#   - with registry access: the default python:3.11-slim works as is;
#   - without (this project's machines, CI): build a local base from Debian's
#     packages with docker/build-base-image.sh and pass
#       --build-arg BASE_IMAGE=replog-base:bookworm
# Dependencies:
#   - docker/fetch-wheels.sh downloads them on the host into docker/wheels/ and
#     they are installed with `pip install --no-index --find-links` (no network
#     needed during the build);
#   - with docker/wheels/ empty they are installed from PyPI.
# See docker/README.md.
#
# Role and settings: `docker run IMAGE master|secondary [flags]`, or env
# (REPLOG_ROLE, REPLOG_PORT, REPLOG_SECONDARIES, ...; every flag has an env twin).
# The node listens on 0.0.0.0, so it needs the cluster secret (a file, e.g. a
# Docker secret: REPLOG_CLUSTER_SECRET_FILE=/run/secrets/cluster_secret) and
# refuses to start without one, unless REPLOG_INSECURE=1.
# Only the classic builder's syntax is used (no BuildKit-only features).

ARG BASE_IMAGE=python:3.11-slim

# ---- build stage: a venv with the dependencies and the replog package ----
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Debian's python3 is "externally managed" (PEP 668): install into a venv.
RUN python3 -m venv /opt/replog
# docker/wheels/ may be absent (fresh clone, PyPI path): the always-present
# script makes the COPY valid either way.
COPY docker/fetch-wheels.sh docker/wheel[s] /wheels/
COPY requirements.txt /src/
# Local wheels when docker/fetch-wheels.sh has filled docker/wheels/, else PyPI
# (or a mirror: --build-arg PIP_INDEX_URL=... ; pip reads these from the env).
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then \
        echo "replog: installing dependencies from docker/wheels (no index)"; \
        pip_src="--no-index --find-links /wheels"; \
    else \
        echo "replog: docker/wheels is empty: installing dependencies from PyPI"; \
        pip_src=""; \
    fi; \
    echo "$pip_src" > /wheels/.pip-source; \
    /opt/replog/bin/pip install $pip_src -r /src/requirements.txt
COPY pyproject.toml /src/
COPY replog/ /src/replog/
RUN /opt/replog/bin/pip install $(cat /wheels/.pip-source) --no-deps /src \
    && /opt/replog/bin/python -c "import replog" \
    && /opt/replog/bin/pip uninstall --yes --quiet pip setuptools \
    && /opt/replog/bin/python -m compileall -q /opt/replog/lib
# (Bytecode compiled here: the node user cannot write it at run time.)

# ---- runtime stage ----
# Metadata comes before the COPY of the venv so that a code change rebuilds one
# layer only (each step of the classic builder costs a container commit).
FROM ${BASE_IMAGE}
ARG REPLOG_UID=10001
RUN groupadd --system --gid "${REPLOG_UID}" replog \
    && useradd --system --uid "${REPLOG_UID}" --gid replog --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin replog \
    && mkdir -p /data \
    && chown replog:replog /data
ENV PATH=/opt/replog/bin:$PATH \
    VIRTUAL_ENV=/opt/replog \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REPLOG_ROLE=master \
    REPLOG_HOST=0.0.0.0 \
    REPLOG_PORT=8000 \
    REPLOG_DATA_DIR=/data
# The node's data directory (its durable log), owned by the non-root user.
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8000
# The node handles SIGTERM: answers pending waiters, stops its actors, exits 0.
STOPSIGNAL SIGTERM
# GET /health answers 200 on both roles. No curl in the image: Python's urllib.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/opt/replog/bin/python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('REPLOG_PORT', '8000'), timeout=2); sys.exit(0 if r.status == 200 else 1)"]
# The venv's python. The role comes from REPLOG_ROLE (default master) unless it
# is given as the first argument: docker run IMAGE secondary --delay 0.5
ENTRYPOINT ["/opt/replog/bin/python", "-m", "replog"]
CMD []
USER replog:replog
# Code (root-owned, read-only for the node user) last.
COPY --from=build /opt/replog /opt/replog
