# curtainwatch: one image for every part (serve, or serve --only ingest|schedule|web).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY curtainwatch ./curtainwatch
COPY monitor ./monitor
COPY sensors ./sensors
COPY alerts ./alerts
COPY web ./web
COPY migrations ./migrations
# Editable, so the Alembic scripts in /app/migrations sit beside the packages as in a checkout.
RUN pip install -e . && useradd --system --home /app curtainwatch
USER curtainwatch

ENV CURTAINWATCH_WEB_HOST=0.0.0.0 CURTAINWATCH_WEB_PORT=8000 CURTAINWATCH_LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
# Migrations first (idempotent), then all parts in one process.
CMD ["sh", "-c", "curtainwatch db upgrade && exec curtainwatch serve"]
