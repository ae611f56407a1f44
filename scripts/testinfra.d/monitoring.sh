# shellcheck shell=bash
# promtool and dashboard-linter for scripts/testinfra.sh (sourced; uses its log/die/go_env/check_version).
# The checks of deploy/monitoring (crates/pgro/tests/monitoring.rs): `promtool check rules` and
# `promtool test rules` of the alerting rules, `dashboard-linter lint --strict` of the Grafana dashboard.

# Prometheus' Go module versions are v0.3XX.Y for release 3.XX.Y (v0.316.0 is Prometheus 3.16.0).
PROMTOOL_VERSION=v0.316.0
PROMTOOL_DIR=$TI/promtool-$PROMTOOL_VERSION
# grafana/dashboard-linter has no release the Go module proxy serves (v0.1.1 is refused); this
# pseudo-version (main, 2024-12-24) is. As for kopia, `go install pkg@version` fails on the module's
# deprecation lookup (403 for its @v/list), so it is built as a tool of a wrapper module.
DASHBOARD_LINTER_VERSION=v0.0.0-20241224134444-1765d94aec4a
DASHBOARD_LINTER_DIR=$TI/dashboard-linter-$DASHBOARD_LINTER_VERSION

prometheus_release() { # v0.316.0 -> 3.16.0
	local v=${PROMTOOL_VERSION#v0.} minor
	minor=${v%%.*}
	printf '%d.%d.%s' $((10#$minor / 100)) $((10#$minor % 100)) "${v#*.}"
}

build_promtool() {
	local release ld kv
	release=$(prometheus_release)
	go_env
	# promtool --version reports what Prometheus' release build links in (promu's ldflags).
	ld="-s -w"
	for kv in "Version=$release" "Revision=$PROMTOOL_VERSION" "Branch=$PROMTOOL_VERSION" BuildUser=pgro-testinfra \
		"BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"; do
		ld="$ld -X github.com/prometheus/common/version.$kv"
	done
	GOBIN=$PROMTOOL_DIR/bin go install -trimpath -ldflags "$ld" \
		"github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
	chmod -R a+rX "$PROMTOOL_DIR"
	verify_promtool
}

# --version names the release, and a one-alert rule file passes `check rules` and its unit test.
verify_promtool() {
	local bin=$PROMTOOL_DIR/bin/promtool d out release
	release=$(prometheus_release)
	check_version "$bin" --version
	out=$("$bin" --version 2>&1)
	[[ $out == "promtool, version $release "* ]] || die "$bin is not promtool $release: $(head -n1 <<<"$out")"
	d=$(mktemp -d)
	TMPDIRS+=("$d")
	cat >"$d/r.yaml" <<-'EOF'
		groups:
		  - name: smoke
		    rules:
		      - alert: Up
		        expr: up == 1
	EOF
	cat >"$d/t.yaml" <<-'EOF'
		rule_files: [r.yaml]
		tests:
		  - input_series:
		      - series: 'up{job="x"}'
		        values: '1x5'
		    alert_rule_test:
		      - eval_time: 1m
		        alertname: Up
		        exp_alerts:
		          - exp_labels: {job: x}
	EOF
	out=$("$bin" check rules "$d/r.yaml" 2>&1) || die "promtool check rules failed: $out"
	out=$(cd "$d" && "$bin" test rules t.yaml 2>&1) || die "promtool test rules failed: $out"
	log "  $bin: check rules and test rules of a one-alert rule file ok"
	rm -rf "$d"
}

build_dashboard_linter() {
	local w=$TI/src/dashboard-linter-$DASHBOARD_LINTER_VERSION
	go_env
	mkdir -p "$w"
	(
		cd "$w"
		[[ -f go.mod ]] || go mod init local/dashboardlinterbin
		go get -tool "github.com/grafana/dashboard-linter@$DASHBOARD_LINTER_VERSION"
		GOBIN=$DASHBOARD_LINTER_DIR/bin go install -trimpath -ldflags "-s -w" tool
	)
	chmod -R a+rX "$DASHBOARD_LINTER_DIR"
	verify_dashboard_linter
}

# It has no --version: `rules` lists its rules; the lint of an empty dashboard runs (in a private directory:
# the lint reads the `.lint` configuration beside the dashboard), and --strict finds its missing datasource
# variable.
verify_dashboard_linter() {
	local bin=$DASHBOARD_LINTER_DIR/bin/dashboard-linter d out
	check_version "$bin" rules
	d=$(mktemp -d)
	TMPDIRS+=("$d")
	printf '{"title":"smoke","panels":[]}\n' >"$d/dashboard.json"
	out=$("$bin" lint "$d/dashboard.json" 2>&1) || die "dashboard-linter lint failed: $out"
	if out=$("$bin" lint --strict "$d/dashboard.json" 2>&1) || [[ $out != *"does not have a templated data source"* ]]; then
		die "dashboard-linter lint --strict did not reject a dashboard without a datasource variable: $out"
	fi
	log "  $bin: lint of an empty dashboard ok; --strict rejects it for its missing datasource variable"
	rm -rf "$d"
}
