# One image for the three programs of the project (ENTRYPOINT below):
#   docker run analytics-api                          the inference service (node service/main.ts)
#   docker run analytics-api node operator/main.ts    the Kubernetes operator
#   docker run analytics-api analytics-api backup ... the CLI (backups, ...)
# Built by `make images` (and `docker compose build`); checked by hadolint in `make test`.

# Production dependencies only. onnxruntime-node's CPU binaries ship in its npm package; its
# install script would download CUDA files from a host outside the registries: skipped (denied in
# package.json's allowScripts, and by the variable the script reads for an npm without that policy).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MODELS_DIR=/app/models
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY contract/ ./contract/
COPY service/ ./service/
COPY operator/ ./operator/
COPY bin/ ./bin/
# The sample models (MODELS_DIR is the model store, a volume; the samples are imported from here
# when SAMPLE_MODELS_DIR points at them, as compose.yaml does).
COPY models/ ./sample-models/
# `analytics-api` on PATH; the store and backup folders owned by the runtime user, so a new
# named volume mounted there (docker compose) starts with that owner.
RUN ln -s /app/bin/analytics-api.js /usr/local/bin/analytics-api \
 && mkdir -p /app/models /app/backups \
 && chown node:node /app/models /app/backups
# The base image's `node` user, by number so Kubernetes can check runAsNonRoot (the manifests
# run as the same uid and gid).
USER 1000:1000
EXPOSE 8080 8081
# No HEALTHCHECK: the same image runs the operator and one-shot CLI commands, where an HTTP check
# on 8080 would be wrong. Kubernetes uses its probes (infra/) and compose.yaml its own healthcheck.
# The base image's entrypoint runs a command given as is (`analytics-api`, `node ...`) and
# prefixes `node` to a script path (`operator/main.ts`).
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node", "service/main.ts"]
