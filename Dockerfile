# mactl image: one image for every role (api, worker, scheduler, migrate); the command picks it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (cached while only the code changes): install the project's
# declared dependencies from pyproject.toml, then the project itself.
COPY pyproject.toml README.md alembic.ini ./
COPY automation ./automation
COPY channels ./channels
COPY admin_cli ./admin_cli
COPY migrations ./migrations
COPY templates ./templates
COPY playbooks ./playbooks
RUN pip install . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /app/var \
    && chown app:app /app/var

USER app
# Files the demo transport writes (OUTBOX_FILE) and the SQLite default live here.
VOLUME ["/app/var"]
ENV OUTBOX_FILE=/app/var/outbox.jsonl \
    DATABASE_URL=sqlite:////app/var/automation.db

EXPOSE 8000
# For the HTTP roles (run, serve); docker-compose.yml disables it for worker and scheduler.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# Default: the all-in-one embedded runtime (SQLite + in-process broker).
CMD ["mactl", "run", "--host", "0.0.0.0", "--port", "8000"]
