# syntax=docker/dockerfile:1
# Production image: web (daphne), Celery worker and beat all run from it; see
# docker-compose.yml. The venv is built exactly as `make install` builds .venv
# (tests/deploy compares the pip lines).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Only what requirements.txt needs, so code changes keep this layer cached.
COPY requirements.txt ./
COPY packaging/dlib/pyproject.toml packaging/dlib/pyproject.toml
# Nothing compiles: dlib arrives prebuilt as dlib-bin through the shim, and the
# only sdists (the shim, face_recognition_models) are pure Python.
RUN pip install --no-cache-dir --upgrade pip 'setuptools<81' wheel
RUN pip install --no-cache-dir -r requirements.txt


FROM ${PYTHON_IMAGE} AS runtime

# ldd on the venv's extension modules (dlib, cv2, litert, numpy, Pillow,
# psycopg) lists only libc, libstdc++, libgcc_s and libz, all already in the
# slim base image; the wheels bundle the rest. No apt-get needed.

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_DEBUG=false \
    MEDIA_ROOT=/app/var/media \
    STATIC_ROOT=/app/var/static

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY . .

# The media volume is mounted over /app/var/media; creating it here owned by
# app makes a fresh named volume writable by the non-root user.
RUN mkdir -p /app/var/media /app/var/static \
    && chown -R app:app /app/var

USER app

# A throwaway key so settings load; the real one comes from the environment
# at run time and this one is not kept in the image.
RUN SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --noinput

EXPOSE 8000

# A TCP connect rather than an HTTP GET: a GET from 127.0.0.1 would be a
# DisallowedHost once ALLOWED_HOSTS names the public host, logged every interval.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8000), timeout=4).close()"]

# Websocket messages over 1 MiB (settings.WEBSOCKET_MAX_MESSAGE_BYTES) are refused by daphne itself.
# -v 0: no access log, which would print every candidate's link token.
CMD ["daphne", "-v", "0", "-b", "0.0.0.0", "-p", "8000", "--websocket-max-message-size", "1048576", "--websocket-max-frame-size", "1048576", "proctor.asgi:application"]
