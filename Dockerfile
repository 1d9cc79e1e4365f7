# syntax=docker/dockerfile:1
# Two images from one file (docker-compose.yml builds both):
#   docker build --target web -t pickwise-web .  web (gunicorn), CPU worker, beat, migrate; no torch
#   docker build --target ml  -t pickwise-ml  .  generate and train workers: torch (CUDA), diffusers
# Both run as the unprivileged user `pickwise`; the code is root-owned and read-only to it, and
# only /data (PICKWISE_VAR_DIR: media, exports, training runs) is writable.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PICKWISE_VAR_DIR=/data \
    STATIC_ROOT=/app/static
RUN groupadd --system --gid 1000 pickwise \
    && useradd --system --uid 1000 --gid pickwise --home-dir /data --shell /usr/sbin/nologin pickwise \
    && mkdir -p /data \
    && chown pickwise:pickwise /data
WORKDIR /app

FROM base AS web
# Requirements first, so a code change does not reinstall them.
COPY requirements/web.txt requirements/
RUN pip install -r requirements/web.txt
COPY . .
# Static files are baked into the image and served by whitenoise. The key and the var dir
# exist only for this command: settings refuse to load without a key when DEBUG is off.
# DEBUG=0 keeps manage.py from taking the build for a development checkout (no
# DATABASE_URL here), which would skip whitenoise's compressed copies.
RUN DEBUG=0 SECRET_KEY=collectstatic-only PICKWISE_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var
USER pickwise
EXPOSE 8000
CMD ["gunicorn", "--config=gunicorn.conf.py", "--bind=0.0.0.0:8000", "--access-logfile=-"]

FROM base AS ml
COPY requirements/web.txt requirements/ml.txt requirements/
# torch==2.13.0 from PyPI is the CUDA build on Linux.
RUN pip install -r requirements/web.txt -r requirements/ml.txt
COPY . .
# Model downloads (when a generator names a hub id) land on the shared volume, once.
ENV HF_HOME=/data/huggingface
USER pickwise
CMD ["celery", "-A", "pickwise", "worker", "-Q", "generate", "--pool=solo", "--concurrency=1", "--prefetch-multiplier=1", "-l", "INFO"]
