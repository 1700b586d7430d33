# The operator's targets (included by the Makefile), against the current kubeconfig's cluster
# ($KUBECONFIG or ~/.kube/config), as kubebuilder's `make install` and `make run` work:
#   make cluster-local          a local control plane (another terminal; export KUBECONFIG as it says)
#   make install-crds           the ModelVersion CRD, generated from contract/model-version.ts (server-side apply)
#   make run-operator           the operator on this host (Ctrl-C stops it and releases its Lease)
#   make uninstall-crds         removes the CRD and with it every ModelVersion
# Settings come from the environment (operator/config.ts), e.g. NAMESPACE=analytics, LOG_LEVEL=debug,
# SERVICE_DEPLOYMENT, IMPORT_IMAGE, METRICS_PORT (8081), LEADER_ELECT.
.PHONY: install-crds uninstall-crds run-operator

# kubectl from PATH, else the one `make k8s-bins` built.
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || ls -1d $(CACHE)/k8s-bins/*/kubectl 2>/dev/null | tail -n 1)
OPERATOR_NAMESPACE ?= $(if $(NAMESPACE),$(NAMESPACE),analytics)

define need-kubectl
	@test -n "$(KUBECTL)" || { echo "kubectl not found: install it, or run \`make k8s-bins\` to build it into .cache/k8s-bins/" >&2; exit 1; }
endef

install-crds: node_modules/.install-stamp
	$(need-kubectl)
	node operator/print-crd.ts | "$(KUBECTL)" apply --server-side --field-manager=analytics-operator-install -f -
	"$(KUBECTL)" wait --for=condition=Established --timeout=60s crd/modelversions.serving.analytics.dev

uninstall-crds:
	$(need-kubectl)
	"$(KUBECTL)" delete --ignore-not-found crd/modelversions.serving.analytics.dev

run-operator: node_modules/.install-stamp install-crds
	"$(KUBECTL)" create namespace "$(OPERATOR_NAMESPACE)" --dry-run=client -o yaml | "$(KUBECTL)" apply -f - >/dev/null
	NAMESPACE="$(OPERATOR_NAMESPACE)" node operator/main.ts
