# shellcheck shell=bash
# Storage emulators for scripts/testinfra.sh (sourced; uses its log/die/go_env/check_version): fake-gcs-server
# (Go module proxy) for Google Cloud Storage and Azurite (npm) for Azure Blob Storage, so the readers'
# GCS and Azure paths run against a real server (crates/kopia/tests/conformance_gcs_azure.rs). Azurite's
# npm prefix also holds the official @azure/storage-blob SDK, which the tests use to create containers
# (Azure has no anonymous "create container"; the SDK signs the request with the account key).

FAKE_GCS_VERSION=v1.56.1
FAKE_GCS_DIR=$TI/fake-gcs-server-$FAKE_GCS_VERSION
AZURITE_VERSION=3.35.0
AZURE_STORAGE_BLOB_VERSION=12.29.1
AZURITE_DIR=$TI/azurite-$AZURITE_VERSION

build_fake_gcs() {
	go_env
	GOBIN=$FAKE_GCS_DIR/bin go install -trimpath -ldflags "-s -w" \
		"github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
	chmod -R a+rX "$FAKE_GCS_DIR"
	verify_fake_gcs
}

# It serves: a bucket is created and listed over the JSON API on a private port, and it stops.
verify_fake_gcs() {
	local bin=$FAKE_GCS_DIR/bin/fake-gcs-server port pid out
	check_version "$bin" -help
	port=$(free_tcp_port)
	"$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory -log-level error >/dev/null 2>&1 &
	pid=$!
	# python3 rather than curl: curl is not among the host packages this script installs.
	for _ in $(seq 50); do
		out=$(python3 -c 'import sys, urllib.request as u
r = u.Request(sys.argv[1], data=b"{\"name\":\"smoke\"}", headers={"Content-Type": "application/json"})
print(u.urlopen(r, timeout=5).read().decode())' "http://127.0.0.1:$port/storage/v1/b" 2>/dev/null) && break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[[ $out == *'"name":"smoke"'* ]] || die "fake-gcs-server did not create a bucket: $out"
	log "  $bin: created a bucket over the JSON API"
}

install_azurite() {
	command -v npm >/dev/null || die "npm not found on PATH (needed for Azurite)"
	mkdir -p "$AZURITE_DIR"
	npm install --no-audit --no-fund --prefix "$AZURITE_DIR" \
		"azurite@$AZURITE_VERSION" "@azure/storage-blob@$AZURE_STORAGE_BLOB_VERSION"
	chmod -R a+rX "$AZURITE_DIR"
	verify_azurite
}

# It serves (telemetry off: Azurite otherwise reports to Microsoft), and the SDK creates a container in it.
verify_azurite() {
	local bin=$AZURITE_DIR/node_modules/.bin/azurite-blob port pid d out
	[[ -x $bin ]] || die "$bin missing"
	d=$(mktemp -d)
	TMPDIRS+=("$d")
	port=$(free_tcp_port)
	"$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$d" --disableTelemetry --skipApiVersionCheck \
		--silent >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	out=$(NODE_PATH=$AZURITE_DIR/node_modules node "$(dirname "${BASH_SOURCE[0]}")/azure-container.js" \
		"http://127.0.0.1:$port/devstoreaccount1" smoke 2>&1) || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[[ $out == "created smoke" ]] || die "Azurite or @azure/storage-blob failed: $out"
	log "  $bin: Azurite $AZURITE_VERSION served; @azure/storage-blob $AZURE_STORAGE_BLOB_VERSION created a container"
	rm -rf "$d"
}

free_tcp_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
