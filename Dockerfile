# syntax=docker/dockerfile:1

# ---- build: compile TypeScript and better-sqlite3's native addon, then drop dev dependencies ----
FROM node:20-bookworm-slim AS build
# better-sqlite3 falls back to node-gyp when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Dependencies first, so editing the sources does not reinstall them. --ignore-scripts skips the
# root `prepare` (a build, impossible before src/ is here); the one native addon is then built explicitly.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3

COPY tsconfig.json tsconfig.build.json ./
COPY scripts/vendor-assets.mjs ./scripts/
COPY src ./src
RUN npm run build \
 && rm -f dist/.tsbuildinfo \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime: only what `node bin/intake.js` loads ----
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app

# Owned by root and read-only to the service; only the data directory belongs to `node`.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY public ./public
# ReDoc's bundle, copied out of its (dev) package by the build: /redoc serves it, no CDN.
COPY --from=build /app/public/vendor ./public/vendor

# The SQLite file (embedded mode) and generated secrets live here. Created before VOLUME so a new
# named volume starts owned by `node`.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]

USER node
# 8000: embedded (all roles); 5001-5008: one role each in distributed mode.
EXPOSE 8000 5001-5008

# No curl in slim images: use Node's fetch. A process running one role listens on that role's port
# unless PORT is set (several roles, or all of them: 8000), so the check derives the port the same way.
# Healthy is /health/ready answering 200: the database answers (a broker that is down only degrades
# a role, which still takes writes); 503 (database down, broker refusing the configuration) is unhealthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const p={ingestion:5001,query:5002,validation:5003,processing:5004,routing:5005,statistics:5006,tracking:5007,attribution:5008};const r=[...new Set((process.env.ROLE||'').split(',').map(s=>s.trim()))];const port=process.env.PORT||(r.length===1&&p[r[0]])||8000;fetch('http://127.0.0.1:'+port+'/health/ready',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]

# Shuts down gracefully on SIGTERM. As PID 1, node ignores signals until it has set its handlers (all
# of start-up: migrations, opening the database) and reaps no orphans: run the image with
# `docker run --init` (Compose: `init: true`, as docker-compose.yml does).
CMD ["node", "bin/intake.js", "serve"]
