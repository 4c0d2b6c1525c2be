#!/usr/bin/env bash
# test-services.sh — make sure the local PostgreSQL (127.0.0.1:5432), MariaDB
# (127.0.0.1:3306), Redis (127.0.0.1:6379) and FerretDB (MongoDB wire,
# 127.0.0.1:27017) servers the tests use are up.
#
# FerretDB v1 cannot be installed with apt-get: it is built once from the Go
# module proxy (FerretDB's embeddable package, in a small module of its own
# outside Lethe's go.mod) into $LETHE_TOOLS (default ~/.cache/lethe-tools),
# and runs as the current user with its SQLite backend in
# $LETHE_TOOLS/ferretdb-data.
#
# A server that does not answer is started (and, on a machine without it at all,
# installed with apt-get first); then every started server is waited for, up to
# TEST_SERVICES_TIMEOUT seconds (default 60). When everything is already up this
# only runs three pings. It also installs promtool, best effort (see below).
set -euo pipefail

TIMEOUT="${TEST_SERVICES_TIMEOUT:-60}"
MARIADBD=/usr/sbin/mariadbd
TOOLS="${LETHE_TOOLS:-$HOME/.cache/lethe-tools}"
FERRETDB_VERSION=v1.24.2
FERRETDB="$TOOLS/ferretdb-$FERRETDB_VERSION"

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Privileged steps (install, start) need root; use sudo when it works without a password.
SUDO=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  fi
fi
as_root() { "${SUDO[@]}" "$@"; }

# ---- health checks (each bounded to ~2 s) -------------------------------------

postgres_up() {
  command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 -t 2
}

mariadb_up() {
  # ping exits 0 whenever the server answers, even with "Access denied".
  local admin
  admin="$(command -v mariadb-admin || command -v mysqladmin)" || return 1
  "$admin" --no-defaults --protocol=tcp -h 127.0.0.1 -P 3306 --connect-timeout=2 ping >/dev/null 2>&1
}

redis_up() {
  command -v redis-cli >/dev/null || return 1
  local out
  out="$(timeout 3 redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)" || return 1
  # NOAUTH: up, but password protected; LOADING: still reading its dataset.
  [[ "$out" == PONG || "$out" == NOAUTH* ]]
}

ferretdb_up() {
  # A TCP connect: FerretDB listens once its backend is open.
  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/27017' 2>/dev/null
}

# ---- install (only when a server or its client is missing) -----------------------

apt_updated=false
apt_install() {
  command -v apt-get >/dev/null || die "$* not installed and apt-get is not available; install them with your package manager"
  if ((EUID != 0)) && ((${#SUDO[@]} == 0)); then
    die "$* not installed; run as root (or with passwordless sudo), or: sudo apt-get install $*"
  fi
  log "installing $* with apt-get"
  if ! $apt_updated; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=true
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_postgres_installed() {
  if ! command -v pg_ctlcluster >/dev/null || ! command -v pg_isready >/dev/null; then
    apt_install postgresql postgresql-client
  fi
  compgen -G '/etc/postgresql/*/main' >/dev/null ||
    die "PostgreSQL is installed but has no 'main' cluster in /etc/postgresql; create one with: pg_createcluster <version> main"
}

ensure_mariadb_installed() {
  if [[ ! -x "$MARIADBD" ]] || { ! command -v mariadb-admin >/dev/null && ! command -v mysqladmin >/dev/null; }; then
    apt_install mariadb-server mariadb-client
  fi
  [[ -x "$MARIADBD" ]] || die "$MARIADBD is still missing after installing mariadb-server"
}

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server redis-tools
  fi
}

# ensure_ferretdb_installed builds FerretDB once (about a minute with a cold
# module cache) from a generated module that embeds it: `go install
# .../cmd/ferretdb@version` gives a binary that refuses to start without the
# version files FerretDB's own build generates.
ensure_ferretdb_installed() {
  [[ -x "$FERRETDB" ]] && return 0
  command -v go >/dev/null || die "go is needed to build FerretDB"
  local src
  src="$(mktemp -d)"
  mkdir -p "$TOOLS"
  printf 'module lethe.dev/ferretdb-tool\n\ngo 1.24\n\nrequire github.com/FerretDB/FerretDB %s\n' "$FERRETDB_VERSION" >"$src/go.mod"
  cat >"$src/main.go" <<'GOEOF'
// ferretdb-tool runs FerretDB v1 (embedded) with its SQLite backend for Lethe's tests.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address")
	dir := flag.String("sqlite-dir", "", "directory of the SQLite databases")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
GOEOF
  log "building FerretDB $FERRETDB_VERSION into $TOOLS (once)"
  if ! (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go mod tidy >&2 && GOWORK=off GOFLAGS=-mod=mod go build -o "$FERRETDB.tmp" . >&2); then
    rm -rf "$src"
    die "building FerretDB $FERRETDB_VERSION failed"
  fi
  mv "$FERRETDB.tmp" "$FERRETDB"
  rm -rf "$src"
}

# ---- start (the machine's usual commands) -------------------------------------------

start_postgres() {
  [[ -d /var/run/postgresql ]] || as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  # shellcheck disable=SC2046 # one version directory on these machines
  as_root pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
}

start_mariadb() {
  # Socket and pid directory; /run is emptied on reboot.
  [[ -d /run/mysqld ]] || as_root install -d -o mysql -g mysql -m 755 /run/mysqld
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

start_redis() {
  [[ -d /var/lib/redis ]] || as_root mkdir -p /var/lib/redis
  [[ -d /var/log/redis ]] || as_root mkdir -p /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

start_ferretdb() {
  mkdir -p "$TOOLS/ferretdb-data"
  # setsid, no inherited descriptors: it outlives this script and make.
  setsid "$FERRETDB" -listen 127.0.0.1:27017 -sqlite-dir "$TOOLS/ferretdb-data" \
    </dev/null >>"$TOOLS/ferretdb.log" 2>&1 &
}

# Where to look when a server does not come up.
hint() {
  case "$1" in
    postgres) echo "see /var/log/postgresql/ (postgresql-*-main.log)" ;;
    mariadb) echo "run '$MARIADBD' in the foreground to see why it stops" ;;
    redis) echo "see /var/log/redis/ci.log" ;;
    ferretdb) echo "see $TOOLS/ferretdb.log" ;;
  esac
}

addr() {
  case "$1" in
    postgres) echo "PostgreSQL on 127.0.0.1:5432" ;;
    mariadb) echo "MariaDB on 127.0.0.1:3306" ;;
    redis) echo "Redis on 127.0.0.1:6379" ;;
    ferretdb) echo "FerretDB on 127.0.0.1:27017" ;;
  esac
}

# promtool (Debian package prometheus) checks the alert rules and runs their
# unit tests (test/gitops). Best effort: without it those two checks are
# reported as not run, and nothing else depends on it. Debian's postinst may
# start a Prometheus server; it is stopped, the tests need only the tool.
ensure_promtool() {
  command -v promtool >/dev/null && return 0
  if (apt_install prometheus) && command -v promtool >/dev/null; then
    as_root pkill -x prometheus 2>/dev/null || true
  else
    log "promtool is not available: test/gitops will not check the alerts' PromQL"
  fi
}

# ---- main -----------------------------------------------------------------------------

ensure_promtool
services=(postgres mariadb redis ferretdb)
down=()
for s in "${services[@]}"; do
  "${s}_up" || down+=("$s")
done
if ((${#down[@]} == 0)); then
  log "PostgreSQL :5432, MariaDB :3306, Redis :6379 and FerretDB :27017 are up"
  exit 0
fi

startlog="$(mktemp)"
trap 'rm -f "$startlog"' EXIT
for s in "${down[@]}"; do
  "ensure_${s}_installed"
  # Installing may have started it (Debian's postinst starts services where it can).
  if "${s}_up"; then continue; fi
  log "$(addr "$s") is not reachable; starting it"
  # Output goes to a file, not a pipe: a daemon keeping an inherited pipe open would hang us.
  if ! "start_$s" >"$startlog" 2>&1; then
    cat "$startlog" >&2
    die "starting $(addr "$s") failed; $(hint "$s")"
  fi
done

deadline=$((SECONDS + TIMEOUT))
for s in "${down[@]}"; do
  until "${s}_up"; do
    ((SECONDS < deadline)) || die "$(addr "$s") does not accept connections after ${TIMEOUT}s; $(hint "$s")"
    sleep 0.5
  done
  log "$(addr "$s") is up"
done
