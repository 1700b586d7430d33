#!/usr/bin/env bash
# make demo: a sample ModelVersion, served once the operator has imported and routed it, then a
# prediction through the ingress.
set -euo pipefail
# shellcheck source=infra/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need kubectl "see https://kubernetes.io/docs/tasks/tools/"
need curl "sudo apt-get install curl"
SAMPLE=${SAMPLE:-$root/operator/samples/iris-configmap.yaml}
MODEL=${MODEL:-iris}
BASE_URL=${BASE_URL:-http://localhost}
[[ -f $SAMPLE ]] || die "sample $SAMPLE not found"

say "applying $(basename "$SAMPLE")"
mapfile -t objects < <(kc -n "$NAMESPACE" apply --server-side --field-manager=analytics-demo -f "$SAMPLE" -o name)
mvs=()
for o in "${objects[@]}"; do [[ $o == modelversion* ]] && mvs+=("$o"); done
(( ${#mvs[@]} > 0 )) || die "$SAMPLE holds no ModelVersion"

say "waiting until ${mvs[*]} is Serving"
if ! kc -n "$NAMESPACE" wait "${mvs[@]}" --for=jsonpath='{.status.phase}'=Serving --timeout="$ROLLOUT_TIMEOUT"; then
  kc -n "$NAMESPACE" get "${mvs[@]}" -o wide >&2 || true
  die "not Serving; see: kubectl -n $NAMESPACE describe ${mvs[0]}; kubectl -n $NAMESPACE logs deploy/analytics-operator"
fi

# One row: the model's features (from the ModelVersion) with iris-like values.
mapfile -t features < <(kc -n "$NAMESPACE" get "${mvs[0]}" -o jsonpath='{range .spec.features[*]}{@}{"\n"}{end}')
values=(5.9 3.0 5.1 1.8)
body='{"features": {'
for i in "${!features[@]}"; do
  (( i > 0 )) && body+=', '
  body+="\"${features[$i]}\": ${values[$((i % ${#values[@]}))]}"
done
body+='}}'

say "POST $BASE_URL/api/v1/predict/$MODEL"
echo "$body" >&2
curl -fsS --retry 10 --retry-delay 2 --retry-all-errors -X POST "$BASE_URL/api/v1/predict/$MODEL" \
  -H 'content-type: application/json' -d "$body"
echo
