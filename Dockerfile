# tsc-croc relay. Build: docker build -t tsc-croc-relay .
# Run:   docker run -d --name tsc-croc-relay -p 9009:9009 -p 9010:9010 --stop-timeout 40 \
#          -e TSC_CROC_RELAY_PASSWORD=... tsc-croc-relay
# Configuration: TSC_CROC_RELAY_* variables (docs/self-hosting.md, `tsc-croc relay --help`).

# ---- build: compile TypeScript, then keep only the production dependencies
FROM node:20-alpine AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.web.json ./
COPY scripts ./scripts
COPY src ./src
# the code, and the browser page the relay serves at / (dist/web)
RUN npx tsc -p tsconfig.json && node scripts/bundle-web.mjs && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: node, the compiled code and its dependencies; no compiler, no sources, no tests
FROM node:20-alpine
ENV NODE_ENV=production \
    TSC_CROC_RELAY_HOST=0.0.0.0 \
    TSC_CROC_RELAY_PORT=9009 \
    TSC_CROC_RELAY_TCP_PORT=9010
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist/src ./dist/src
COPY --from=build --chown=root:root /app/dist/web ./dist/web
# The files belong to root and are read-only for the process, which runs as the unprivileged "node" user.
USER node
EXPOSE 9009/tcp 9010/tcp
# SIGTERM drains: stapled transfers get TSC_CROC_RELAY_SHUTDOWN_GRACE (30 s) to finish; give
# `docker stop` more than that (--stop-timeout 40 above, or stop_grace_period in compose).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TSC_CROC_RELAY_PORT||9009)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# A young generation of 1 MiB semi-spaces: under a request flood V8 would grow it to 3 x 16 MiB and
# keep it after the flood (docs/self-hosting.md, "Under attack").
CMD ["node", "--max-semi-space-size=1", "dist/src/cli/main.js", "relay"]
