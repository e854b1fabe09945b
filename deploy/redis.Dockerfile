# A stand-in for redis:7.4-alpine where no image registry is reachable: Debian's
# redis-server (7.0) on the image deploy/local-node-image.sh imports. Built with no context:
#   docker build --build-arg DEBIAN_IMAGE=lobu-local/debian:bookworm -t lobu-local/redis:bookworm - < deploy/redis.Dockerfile
# then `lobu deploy render --target compose --redis-image lobu-local/redis:bookworm`.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
# The official image turns protected mode off by default (it is reached only on
# its own network); Debian's binary keeps it on, refusing the gateway without a
# password. The wrapper comes first on PATH, so the Compose command is unchanged.
RUN printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --protected-mode no\n' >/usr/local/bin/redis-server \
 && chmod 0755 /usr/local/bin/redis-server
USER redis
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
CMD ["redis-server"]
