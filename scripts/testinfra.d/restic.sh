# shellcheck shell=bash
# restic for scripts/testinfra.sh (sourced; uses its log/die/go_env/check_version).
# The test oracle of restic sources (issue 15): upstream restic built through the Go module proxy. The
# proxy's version list is stale, so the tag is asked for explicitly (design doc B5). KubeStash builds a fork
# whose repository format is upstream's, so upstream's binary writes the repositories KubeStash users have.

RESTIC_VERSION=v0.19.1
RESTIC_DIR=$TI/restic-$RESTIC_VERSION

build_restic() {
	go_env
	CGO_ENABLED=0 GOBIN=$RESTIC_DIR/bin go install -trimpath -ldflags "-s -w" \
		"github.com/restic/restic/cmd/restic@$RESTIC_VERSION"
	chmod -R a+rX "$RESTIC_DIR"
	verify_restic
}

verify_restic() {
	check_version "$RESTIC_DIR/bin/restic" version
}
