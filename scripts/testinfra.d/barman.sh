# shellcheck shell=bash
# barman-cloud for scripts/testinfra.sh (sourced; uses its log/die/step/check_version/ensure_debs/run_as_pg).
# The test oracle of barman-cloud sources (issue 14): barman[cloud] 3.19.1 from PyPI — the version
# CloudNativePG's barman-cloud plugin pins — in a virtualenv of Debian's own python3, so the PostgreSQL user
# can run it (archive_command, barman-cloud-backup as CNPG runs it) without reaching into /root. The extras
# are the compressions barman offers beyond gzip/bzip2/xz: snappy, zstandard, lz4.

BARMAN_VERSION=3.19.1
BARMAN_DIR=$TI/barman-$BARMAN_VERSION

install_barman() {
	local py=/usr/bin/python3
	[[ -x $py ]] || py=$(command -v python3) || die "python3 not found (needed for barman-cloud)"
	ensure_debs python3-venv
	rm -rf "$BARMAN_DIR"
	"$py" -m venv "$BARMAN_DIR" || die "$py -m venv failed (Debian: apt-get install python3-venv)"
	"$BARMAN_DIR/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
		"barman[cloud,snappy,zstandard,lz4]==$BARMAN_VERSION"
	chmod -R a+rX "$BARMAN_DIR"
	verify_barman
}

verify_barman() {
	local t
	for t in barman-cloud-backup barman-cloud-restore barman-cloud-wal-archive barman-cloud-wal-restore \
		barman-cloud-backup-list; do
		check_version "$BARMAN_DIR/bin/$t" --version
	done
	# every compression module imports (a missing one only shows when a backup asks for it)
	check_version "$BARMAN_DIR/bin/python" -c \
		'import boto3, snappy, zstandard, lz4.frame, psycopg2, barman; print("barman", barman.__version__)'
	if getent passwd "$PG_USER" >/dev/null; then
		check_version setpriv --reuid="$(id -u "$PG_USER")" --regid="$(id -g "$PG_USER")" --clear-groups -- \
			"$BARMAN_DIR/bin/barman-cloud-wal-archive" --version
	fi
}
