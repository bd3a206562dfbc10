# slack-analyst: docker build -t slack-analyst . && docker run --env-file .env -p 3000:3000 -v analyst-data:/data slack-analyst
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ANALYST_DB=/data/analyst.db \
    PORT=3000

WORKDIR /app
# Dependencies from the hashed lock (its own layer: rebuilt only when the lock changes), then the
# project itself without resolving anything (setuptools, its build backend, comes from the lock too).
COPY requirements-runtime.lock ./
RUN pip install --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /data analyst \
    && mkdir -p /data && chown analyst /data

USER analyst
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD python -c "import os,sys,urllib.request as u; sys.exit(0) if os.environ.get('SLACK_APP_TOKEN') else u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=2)"
ENTRYPOINT ["slack-analyst"]
CMD ["serve"]
