# The AgentTier Router: `agenttier-router serve` on port 8080, as a non-root user,
# with every storage driver (SQLite built in, the postgres and mysql extras).
#
#   docker build -t agenttier-router:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/api-keys.yaml:/etc/agenttier/api-keys.yaml:ro" \
#     -e AGENTTIER_API_KEYS=/etc/agenttier/api-keys.yaml agenttier-router:0.1.0
#
# The base is pinned by tag and by the digest of its multi-architecture index
# (docker-library/repo-info, python:3.11.16-slim-bookworm); renew both together,
# in both stages, so that the virtualenv is copied onto the Python it was built with.

FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/agenttier \
    && /opt/agenttier/bin/pip install '.[postgres,mysql,kubernetes]'

FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f
# tini as PID 1 forwards SIGTERM to the Router and reaps the processes that
# local sandboxes' commands leave behind.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
# A numeric user, so that Kubernetes' runAsNonRoot can check it (the chart runs as 10001 too).
RUN groupadd --system --gid 10001 agenttier \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/agenttier \
       --shell /usr/sbin/nologin agenttier
COPY --from=build /opt/agenttier /opt/agenttier
ENV PATH=/opt/agenttier/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /home/agenttier
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "agenttier-router"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
