# authserver as a container image: `make image` builds it, `make image-test` runs it
# against a throwaway PostgreSQL and gets a token (docs/install.md).
#
#   docker run IMAGE db upgrade          # migrations: an explicit one-off, once per release
#   docker run IMAGE keys ensure         # a signing key on a new database
#   docker run -p 8000:8000 IMAGE        # authserver serve (the default command), on
#                                        # AUTHSERVER_HOST:AUTHSERVER_PORT (0.0.0.0:8000)
#
# BASE is any image with Python 3.11+ and its venv module; where no registry is
# reachable, a Debian base made locally does (deploy/image.py, docs/install.md).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
WORKDIR /src
# Dependencies first, pinned by the lock: this layer is reused until they change.
# Behind a TLS-inspecting proxy, hand pip the proxy's CA bundle as the build secret
# `pip-cert` (deploy/image.py does when PIP_CERT is set); without it nothing changes.
# (An empty README stands in for the real one here, so that editing the docs keeps it.)
COPY pyproject.toml requirements.lock ./
COPY authserver/__init__.py authserver/__init__.py
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && touch README.md \
    && python3 -m venv /opt/authserver \
    && /opt/authserver/bin/pip install --no-cache-dir --disable-pip-version-check \
       -c requirements.lock . \
    && /opt/authserver/bin/pip uninstall --yes authserver
COPY README.md ./
COPY authserver authserver
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && /opt/authserver/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/authserver/bin/python -m compileall -q /opt/authserver/lib

FROM ${BASE}
# An account of its own: the server never runs as root.
RUN (getent passwd authserver || useradd --system --uid 10001 --user-group \
        --home-dir /var/lib/authserver --create-home --shell /usr/sbin/nologin authserver) \
    && mkdir -p /var/lib/authserver && chown authserver:authserver /var/lib/authserver
COPY --from=build /opt/authserver /opt/authserver
ENV PATH=/opt/authserver/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTHSERVER_INSTANCE_DIR=/var/lib/authserver/instance \
    AUTHSERVER_HOST=0.0.0.0 \
    AUTHSERVER_PORT=8000
USER authserver
WORKDIR /var/lib/authserver
EXPOSE 8000
# Liveness: the process answers. Readiness (database, migrations, key, Redis) is
# /readyz, for the load balancer: restarting would not mend a database outage.
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"AUTHSERVER_PORT\"]}/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["authserver"]
CMD ["serve"]
