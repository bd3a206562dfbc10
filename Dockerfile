# slack-analyst: docker build -t slack-analyst . && docker run --env-file .env -p 3000:3000 -v analyst-data:/data slack-analyst
# (or `docker compose up -d` for HTTP mode: compose.yaml). Settings, tokens and keys come from the
# environment at run time; none is baked into the image.

# Stage 1: the environment, in a virtualenv at the path it keeps in the image (scripts' shebangs name it).
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies from the hashed lock (their own layer: rebuilt only when the lock changes), then the
# project itself without resolving anything (setuptools, its build backend, comes from the lock too).
COPY requirements-runtime.lock ./
RUN pip install --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --no-deps --no-build-isolation .

# Stage 2: the same base image and only the installed environment (no sources, no build leftovers).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ANALYST_DB=/data/analyst.db \
    PORT=3000

RUN useradd --system --uid 10001 --no-create-home --home-dir /data analyst \
    && mkdir /data && chown analyst /data
COPY --from=build /opt/venv /opt/venv

USER analyst
WORKDIR /data
# The ledger, conversations and dedupe keys: keep them across restarts and upgrades.
VOLUME ["/data"]
EXPOSE 3000
# Probes /healthz: on $PORT in HTTP mode, on $ANALYST_METRICS_PORT in Socket Mode.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["slack-analyst", "healthcheck"]
ENTRYPOINT ["slack-analyst"]
CMD ["serve"]
