# Every target sets itself up: `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
# onnxruntime-node's install script would download CUDA libraries from outside the registries:
# package.json's allowScripts denies it (npm 11's install-script policy); the variable, which the
# script itself reads, covers an npm that predates allowScripts.
export ONNXRUNTIME_NODE_INSTALL := skip
# The project's Node.js 24 (the npm package `node`) comes first on PATH.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
CACHE := $(CURDIR)/.cache

.PHONY: run test typecheck lint format bench models k8s-bins traefik-bin cluster-local system-packages python-test-deps

node_modules/.install-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

run: node_modules/.install-stamp
	SAMPLE_MODELS_DIR=$${SAMPLE_MODELS_DIR-models} node bin/analytics-api.js serve

typecheck: node_modules/.install-stamp
	tsc --noEmit -p tsconfig.json

# Biome (format and lint, warnings fail) and knip (unused files, exports and dependencies).
lint: node_modules/.install-stamp
	biome check --error-on-warnings .
	knip --no-progress

format: node_modules/.install-stamp
	biome check --write .

system-packages:
	scripts/system-packages.sh

python-test-deps:
	scripts/python-test-deps.sh

k8s-bins:
	test/k8s/build-bins.sh

# Traefik, the tests' ingress controller (test/k8s/ingress.ts), built from source into .cache/traefik/.
traefik-bin:
	test/k8s/build-traefik.sh

cluster-local: node_modules/.install-stamp k8s-bins
	node test/k8s/cluster-local.ts $(if $(NODE),--node=$(NODE))   # NODE=real: kubelet + containerd instead of kwok

test: node_modules/.install-stamp system-packages python-test-deps infra-tools k8s-bins traefik-bin typecheck lint
	node --test --test-concurrency=1 --test-timeout=600000 '{contract,service,operator,infra}/**/*.test.ts' 'test/**/*.test.ts'

bench: node_modules/.install-stamp system-packages
	node bench/run.ts   # BENCH_DURATION_SECONDS (10), BENCH_ROUNDS (3), BENCH_SOAK_SECONDS (600), BENCH_CONNECTIONS (32), BENCH_ONLY, BENCH_SMOKE=1

models:
	models/generate.sh

# The operator's and the manifests' targets (install-crds, run-operator; synth, doctor, cluster,
# images, deploy, demo, undeploy) live beside their code.
-include operator/operator.mk
-include infra/infra.mk
