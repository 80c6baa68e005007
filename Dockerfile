# TaskFlow (app/main.ts compiled to dist/app/main.js: the roles in TASKFLOW_ROLES), for docker-compose.temporal.yml. It needs
# DATABASE_URL (PostgreSQL, TaskFlow's state) and TEMPORAL_ADDRESS; its directories are caches only.
# test/image.test.ts carries out both stages' COPY lists (and the build stage's build) into directories
# and runs the CMD from there.
#
# The app starts sandboxes on the *host's* Docker engine through the mounted socket, so that engine
# must offer the runsc (gVisor) runtime: run `bash scripts/setup.sh` on the host once.
#
# Debian bookworm on purpose: the sandbox image is assembled from this container's own
# /usr/bin/python3.11 and its stdlib (sandbox/image.ts), the same recipe as on a developer machine.

# Stage 1 builds dist/ from the TypeScript sources (TypeScript is a devDependency: it stays here).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-dist.js ./scripts/
# Every folder compiled into dist/ (tsconfig.build.json), nothing else.
COPY app ./app
COPY domain ./domain
COPY src ./src
COPY sandbox ./sandbox
COPY workflows ./workflows
COPY activities ./activities
RUN npm run build

# Stage 2 runs the compiled JavaScript with the production dependencies only (no TypeScript, no ts-node).
FROM node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pyflakes python3-packaging tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# uv (pinned, as scripts/setup.sh installs it): resolves handlers' PEP 723 dependencies and unpacks wheels.
RUN python3.11 -m venv /opt/taskflow-tools && /opt/taskflow-tools/bin/pip install --no-cache-dir uv==0.13.8

WORKDIR /app

# Dependencies first, for the layer cache.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# What the entry points (dist/app/main.js, bin/taskflow.js) load at run time: dist/ carries the
# non-TypeScript files read through __dirname (migrations, the sandbox image's Python, the registries).
COPY bin ./bin
COPY --from=build /app/dist ./dist

ENV NODE_ENV=production \
    DATA_DIR=/app/.data \
    TASKS_DIR=/app/worker/tasks \
    HOST=0.0.0.0 \
    PORT=8080 \
    DOCKER_SOCKET=/var/run/docker.sock \
    DEPENDENCY_UV_PATH=/opt/taskflow-tools/bin/uv \
    DEPENDENCY_CACHE_DIR=/var/lib/taskflow/dependencies

RUN mkdir -p /app/.data /app/worker/tasks
VOLUME ["/app/.data", "/app/worker/tasks"]
EXPOSE 8080

# Root in this container: it talks to the host's Docker socket, which is root-equivalent anyway.
# tini forwards SIGTERM so the app drains its workers and removes its sandbox containers.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/app/main.js"]
