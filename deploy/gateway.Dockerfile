# The Lobu gateway, built from the repository root:
#   docker build -f deploy/gateway.Dockerfile -t lobu/gateway:0.1.0 .
# NODE_IMAGE: any Debian-based Node 24 image (e.g. one imported from a local rootfs).
ARG NODE_IMAGE=node:24-bookworm-slim

# Everything installed and built (the web UI's bundle), then the dev dependencies dropped.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf packages/*/test bench docs

FROM ${NODE_IMAGE}
# The process sandbox driver's tools (namespaces through bubblewrap, volumes
# through e2fsprogs/util-linux) and what an agent's shell commonly uses.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bubblewrap ca-certificates curl e2fsprogs fd-find git ripgrep tini util-linux \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 lobu \
 && useradd --system --uid 10001 --gid lobu --home-dir /home/lobu --create-home lobu \
 && mkdir -p /data /etc/lobu && chown lobu:lobu /data
# Root-owned and read-only to the gateway's user.
COPY --from=build /app /app
ENV NODE_ENV=production LOBU_HOST=0.0.0.0 LOBU_PORT=8080 LOBU_DATA_DIR=/data LOBU_LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.LOBU_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["tini", "--", "node", "/app/packages/cli/bin/lobu.js"]
CMD ["run"]
