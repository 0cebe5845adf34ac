# tsc-croc relay: docker build -t tsc-croc . && docker run -p 9009:9009 -p 9010:9010 tsc-croc
FROM node:20-alpine AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM node:20-alpine
ENV NODE_ENV=production \
    TSC_CROC_RELAY_HOST=0.0.0.0 \
    TSC_CROC_RELAY_PORT=9009 \
    TSC_CROC_RELAY_TCP_PORT=9010
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
USER node
EXPOSE 9009 9010
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TSC_CROC_RELAY_PORT||9009)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/cli/main.js", "relay"]
