# shellcheck shell=bash
# Helm for scripts/testinfra.sh (sourced; uses its log/die/go_env/check_version): the checks of the chart
# deploy/helm/pgro (crates/pgro/tests/helm.rs): `helm lint --strict`, `helm template`, and the e2e install
# (crates/pgro/tests/e2e_disruptive.rs). Helm 4 is built from the Go module proxy like the other tools.

HELM_VERSION=v4.3.2
HELM_DIR=$TI/helm-$HELM_VERSION

build_helm() {
	go_env
	# `helm version` prints what the release build links in.
	GOBIN=$HELM_DIR/bin go install -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
		"helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
	chmod -R a+rX "$HELM_DIR"
	verify_helm
}

# `helm version` names the release, and a one-template chart lints and renders.
verify_helm() {
	local bin=$HELM_DIR/bin/helm d out
	check_version "$bin" version --short
	out=$("$bin" version --short 2>&1)
	[[ $out == "$HELM_VERSION"* ]] || die "$bin is not helm $HELM_VERSION: $out"
	d=$(mktemp -d)
	TMPDIRS+=("$d")
	mkdir -p "$d/smoke/templates"
	printf 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n' >"$d/smoke/Chart.yaml"
	printf 'greeting: hello\n' >"$d/smoke/values.yaml"
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: smoke\ndata:\n  greeting: {{ .Values.greeting | quote }}\n' \
		>"$d/smoke/templates/cm.yaml"
	out=$(HELM_CACHE_HOME=$d/cache HELM_CONFIG_HOME=$d/config HELM_DATA_HOME=$d/data \
		"$bin" lint --strict "$d/smoke" 2>&1) || die "helm lint failed: $out"
	out=$(HELM_CACHE_HOME=$d/cache HELM_CONFIG_HOME=$d/config HELM_DATA_HOME=$d/data \
		"$bin" template smoke "$d/smoke" 2>&1) || die "helm template failed: $out"
	[[ $out == *'greeting: "hello"'* ]] || die "helm template rendered something else: $out"
	log "  $bin: lint --strict and template of a one-template chart ok"
	rm -rf "$d"
}

# prometheus-operator's own CRDs (ServiceMonitor, PrometheusRule), so the chart's optional ServiceMonitor
# and deploy/monitoring/prometheusrule.yaml are validated by the real apiserver. They ship in the root Go
# module (example/prometheus-operator-crd); v0.88.0 is the newest release the proxy serves.
MONITORING_CRDS_VERSION=v0.88.0
MONITORING_CRDS_DIR=$TI/monitoring-crds-$MONITORING_CRDS_VERSION

fetch_monitoring_crds() {
	local dir f
	go_env
	dir=$(cd "$TI" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$MONITORING_CRDS_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir/example/prometheus-operator-crd ]] || die "prometheus-operator $MONITORING_CRDS_VERSION has no CRDs at $dir"
	mkdir -p "$MONITORING_CRDS_DIR"
	for f in monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml; do
		install -m 0644 "$dir/example/prometheus-operator-crd/$f" "$MONITORING_CRDS_DIR/$f"
	done
	verify_monitoring_crds
}

verify_monitoring_crds() {
	local f
	for f in servicemonitors prometheusrules; do
		grep -q "^  name: $f.monitoring.coreos.com$" "$MONITORING_CRDS_DIR/monitoring.coreos.com_$f.yaml" ||
			die "$MONITORING_CRDS_DIR/monitoring.coreos.com_$f.yaml is not the $f CRD"
	done
	log "  $MONITORING_CRDS_DIR: ServiceMonitor and PrometheusRule CRDs"
}
