# syntax=docker/dockerfile:1
#
# codegen-slack-bot image.
#   docker build -t codegen-slack-bot .
#   docker run --rm -e SLACK_BOT_TOKEN=… -e SLACK_APP_TOKEN=… -e CODEGEN_API_TOKEN=… \
#       -e CODEGEN_ORG_ID=… -v codegen-bot-data:/data codegen-slack-bot
# Configuration is environment variables only (see DESIGN.md); nothing secret is baked in.

# ---- builder: a virtualenv with the bot and its dependencies ------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p bot handlers \
    && touch bot/__init__.py handlers/__init__.py \
    && pip install --upgrade pip \
    && pip install . \
    && pip uninstall -y codegen-slack-bot \
    && rm -rf bot handlers build *.egg-info

# Then the bot itself, as a wheel. manifest.yml lives at the repository root; the wheel carries
# a copy as package data (bot/manifest.yml) so `codegen-bot manifest` works in the image.
COPY bot ./bot
COPY handlers ./handlers
COPY manifest.yml ./
RUN cp manifest.yml bot/manifest.yml \
    && pip wheel --no-deps --wheel-dir /wheels . \
    && pip install --no-deps /wheels/*.whl \
    && cd / && python -c "import bot.slack.manifest as m; m.load_manifest()"

# ---- runtime: the virtualenv, a non-root user, nothing else --------------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 codegen \
    && useradd --system --uid 10001 --gid codegen --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin codegen \
    && mkdir -p /data \
    && chown codegen:codegen /data

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    DATABASE_URL=sqlite+aiosqlite:////data/codegen-bot.db

# SQLite lives on this volume; with PostgreSQL (DATABASE_URL=postgresql+asyncpg://…) it stays
# empty. A `.env` file, if you mount one, is read from the working directory /app.
VOLUME ["/data"]
WORKDIR /app
USER codegen:codegen

# HTTP mode (BOT_MODE=http): Slack posts to http://<host>:$PORT/slack/events.
EXPOSE 3000

# The bot serves GET /healthz on $PORT in HTTP mode, and in Socket Mode because PORT is set
# here (unset it to serve nothing in Socket Mode; then run with `--no-healthcheck`). In Socket
# Mode it answers 503 once the socket has been down for 60 s (a refused SLACK_APP_TOKEN, Slack
# unreachable), so the container shows as unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORT:-3000}/healthz', timeout=4)" || exit 1

ENTRYPOINT ["codegen-bot"]
CMD ["run"]
