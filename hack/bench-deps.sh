#!/usr/bin/env bash
# bench-deps.sh — install what `make bench` needs beyond `make test`, or say
# exactly what is missing:
#   - pt-archiver (Debian package percona-toolkit) and Perl's MySQL driver
#     (libdbd-mysql-perl), the baseline of the MariaDB sweep;
#   - MariaDB's SEQUENCE engine, which generates the sweep's data set.
# The servers themselves are started by hack/test-services.sh, and the control
# plane is built by `make envtest`.
#
# A dependency that cannot be installed is reported and the benchmarks still
# run: the parts that need it say so in the table. Exit status 0 unless the
# script itself fails.
set -euo pipefail

log() { printf 'bench-deps: %s\n' "$*" >&2; }

SUDO=()
if ((EUID != 0)) && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
fi
can_install() { command -v apt-get >/dev/null && { ((EUID == 0)) || ((${#SUDO[@]})); }; }

apt_updated=false
apt_install() {
  if ! can_install; then
    log "missing: $* — install with: sudo apt-get install $*"
    return 1
  fi
  log "installing $* with apt-get"
  if ! $apt_updated; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    apt_updated=true
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

missing=()

# pt-archiver and the Perl driver it connects with.
if ! command -v pt-archiver >/dev/null; then
  apt_install percona-toolkit || true
fi
if ! command -v pt-archiver >/dev/null; then
  missing+=("pt-archiver (Debian package percona-toolkit)")
elif ! perl -MDBD::mysql -e 1 2>/dev/null; then
  apt_install libdbd-mysql-perl || true
  perl -MDBD::mysql -e 1 2>/dev/null || missing+=("Perl's DBD::mysql (Debian package libdbd-mysql-perl), which pt-archiver needs")
fi

# MariaDB's SEQUENCE engine (seq_1_to_N tables), on the server the benchmarks use.
client="$(command -v mariadb || command -v mysql || true)"
if [[ -z "$client" ]]; then
  missing+=("the mariadb client (Debian package mariadb-client), to check the server")
else
  engines="$("$client" --no-defaults --protocol=tcp -h "${LETHE_BENCH_MYSQL_HOST:-127.0.0.1}" -P "${LETHE_BENCH_MYSQL_PORT:-3306}" \
    -u "${LETHE_BENCH_MYSQL_USER:-root}" -N -e "SELECT COUNT(*) FROM information_schema.ENGINES WHERE ENGINE = 'SEQUENCE' AND SUPPORT IN ('YES', 'DEFAULT')" 2>&1)" || engines="error: $engines"
  case "$engines" in
    1) ;;
    0) missing+=("MariaDB's SEQUENCE engine: run INSTALL SONAME 'ha_sequence' on the server") ;;
    *) missing+=("a MariaDB server on 127.0.0.1:3306 accepting root without a password (make test-services): $engines") ;;
  esac
fi

if ((${#missing[@]})); then
  for m in "${missing[@]}"; do log "missing: $m"; done
  log "the benchmarks run without them; the parts that need them report n/a"
else
  log "pt-archiver $(pt-archiver --version 2>/dev/null | awk '{print $2}'), DBD::mysql and MariaDB's SEQUENCE engine are available"
fi
