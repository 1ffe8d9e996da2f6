# The voice-call service: Node 20, the built CLI, and the offline speech it
# uses by default (flite speaks, pocketsphinx listens). Runs node itself as
# the container's process, so SIGTERM reaches it and it stops cleanly.
#   NODE_IMAGE: a Node 20 image on Debian bookworm (a local one where there is no registry)
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src/ src/
COPY scripts/ scripts/
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends flite libpocketsphinx3 pocketsphinx-en-us \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --shell /usr/sbin/nologin voicecall \
 && mkdir -p /data /etc/voicecall && chown voicecall:voicecall /data \
 && printf '#!/bin/sh\nexec node /app/dist/cli.js --config "${VOICECALL_CONFIG:-/etc/voicecall/voicecall.json5}" "$@"\n' >/usr/local/bin/voicecall \
 && chmod 755 /usr/local/bin/voicecall
WORKDIR /app
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY package.json openclaw.plugin.json ./
COPY asterisk/voicecall.compose.json5 /etc/voicecall/voicecall.json5
ENV NODE_ENV=production
USER voicecall
VOLUME /data
EXPOSE 3334/tcp
# `voicecall` runs the CLI with the mounted config (VOICECALL_CONFIG); exec, so
# node is the container's process: `docker compose exec voicecall voicecall status`.
ENTRYPOINT ["voicecall"]
CMD ["serve"]
