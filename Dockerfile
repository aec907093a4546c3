# fleetflash: one image for every role (ROLE=api,broker | worker | …) and the device simulator.
# Multi-stage: dependencies and the build in the first stage, production dependencies in the second,
# and only the compiled output, the portal and those dependencies in the small, non-root runtime stage.

# ---- build: compile TypeScript (dist/) and bundle the portal (web/dist/) ----
FROM node:20-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY broker ./broker
COPY devices-sim ./devices-sim
COPY scripts ./scripts
COPY web ./web
RUN npm run build

# ---- deps: production dependencies only ----
FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM node:20-alpine
ENV NODE_ENV=production \
    FIRMWARE_DIR=/data/firmware
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
# The compiled service looks for the portal at dist/web or, failing that, at the repository's web/.
COPY --from=build --chown=root:root /app/web/index.html /app/web/styles.css ./dist/web/
COPY --from=build --chown=root:root /app/web/dist ./dist/web/dist
COPY package.json ./
# Firmware images live on a volume owned by the unprivileged user; the code stays read-only to it.
RUN mkdir -p /data/firmware && chown -R node:node /data
USER node
VOLUME ["/data/firmware"]
# 3000: HTTP (API, portal, firmware downloads, MQTT over WebSocket at /mqtt); 1884: MQTT over TCP;
# 8883: MQTT over TLS (with TLS_CERT_FILE/TLS_KEY_FILE); 9100: METRICS_PORT, when set.
EXPOSE 3000 1884 8883 9100
# Exec form: node is PID 1 and gets SIGTERM itself (graceful shutdown: workers hand executions over).
# --max-semi-space-size=64: fewer young-generation collections (README, Deployment).
CMD ["node", "--max-semi-space-size=64", "dist/src/main.js"]
