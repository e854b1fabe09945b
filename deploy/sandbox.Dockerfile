# The sandbox image for the docker and kubernetes sandbox drivers: the worker
# (pi agent runtime) and an agent's everyday tools, nothing of the gateway.
# Built from the repository root:
#   docker build -f deploy/sandbox.Dockerfile -t lobu/sandbox:0.1.0 .
ARG NODE_IMAGE=node:24-bookworm-slim

# Only the worker's production dependencies (no lifecycle scripts: it needs no native build).
FROM ${NODE_IMAGE} AS build
WORKDIR /opt/lobu
COPY package.json package-lock.json ./
COPY packages/core packages/core
COPY packages/worker packages/worker
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
      --workspace @lobu/worker --workspace @lobu/core --include-workspace-root=false \
 && rm -rf packages/*/test

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bash ca-certificates curl fd-find git jq less procps python3 ripgrep tini unzip \
 && rm -rf /var/lib/apt/lists/*
# The agent's user; the driver runs the container read-only with /workspace as its volume.
RUN groupadd --system --gid 10001 agent \
 && useradd --system --uid 10001 --gid agent --home-dir /workspace --no-create-home agent \
 && mkdir -p /workspace && chown agent:agent /workspace
COPY --from=build /opt/lobu /opt/lobu
ENV NODE_ENV=production HOME=/workspace
USER 10001:10001
WORKDIR /workspace
ENTRYPOINT ["tini", "--", "node", "/opt/lobu/packages/worker/src/main.ts"]
