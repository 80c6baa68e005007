# TaskFlow (app/main.ts: the roles in TASKFLOW_ROLES), for docker-compose.temporal.yml. It needs
# DATABASE_URL (PostgreSQL, TaskFlow's state) and TEMPORAL_ADDRESS; its directories are caches only.
# test/image.test.ts assembles this file's COPY list into a directory and runs its CMD from there.
#
# The app starts sandboxes on the *host's* Docker engine through the mounted socket, so that engine
# must offer the runsc (gVisor) runtime: run `bash scripts/setup.sh` on the host once.
#
# Debian bookworm on purpose: the sandbox image is assembled from this container's own
# /usr/bin/python3.11 and its stdlib (sandbox/image.ts), the same recipe as on a developer machine.
FROM node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3-pyflakes tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, for the layer cache. All of them: ts-node runs the sources at run time and
# needs `typescript`, which package.json lists among the devDependencies.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# Every folder the entry points (app/main.ts, bin/taskflow.js) import or read at run time, nothing else.
COPY tsconfig.json ./
COPY bin ./bin
COPY app ./app
COPY domain ./domain
COPY src ./src
COPY sandbox ./sandbox
COPY workflows ./workflows
COPY activities ./activities

ENV NODE_ENV=production \
    DATA_DIR=/app/.data \
    TASKS_DIR=/app/worker/tasks \
    HOST=0.0.0.0 \
    PORT=8080 \
    DOCKER_SOCKET=/var/run/docker.sock

RUN mkdir -p /app/.data /app/worker/tasks
VOLUME ["/app/.data", "/app/worker/tasks"]
EXPOSE 8080

# Root in this container: it talks to the host's Docker socket, which is root-equivalent anyway.
# tini forwards SIGTERM so the app drains its workers and removes its sandbox containers.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node_modules/.bin/ts-node", "--transpile-only", "app/main.ts"]
