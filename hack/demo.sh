#!/usr/bin/env bash
# demo.sh up|down — Lethe end to end on this machine, in one command.
#
#   up    builds what it needs, starts the local control plane (hack/dev-cluster.sh),
#         (re)creates the demo PostgreSQL database lethe_demo (hack/demo/schema.sql),
#         applies the demo DataStore, RetentionPolicy and subject Secret, runs the
#         manager in the background (bin/manager, log .dev-cluster/manager.log),
#         files an Access request and a dry-run Erasure, waits for them
#         (kubectl wait --for=condition=Ready), then the Erasure, runs the
#         RetentionPolicy at once (annotation privacy.lethe.dev/run-now, no
#         waiting for its schedule), and prints each receipt, the export, what
#         changed in the database and the sweep's results. Everything stays
#         up for exploring with kubectl. Running it again starts over: the
#         database is recreated and the requests are filed anew.
#   down  stops the manager and the control plane and drops the demo database.
#
# Settings (environment): PGHOST, PGPORT, PGUSER (default 127.0.0.1, 5432,
# postgres: the local server, trust authentication), DEMO_DB (lethe_demo),
# DEMO_WAIT_TIMEOUT (per kubectl wait, default 120s), ENVTEST_DIR and
# DEV_CLUSTER_DIR as for hack/dev-cluster.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.37.2}"
ENVTEST_DIR="${ENVTEST_DIR:-$HOME/.local/share/kubebuilder-envtest/k8s/${K8S_VERSION}-linux-amd64}"
DIR="${DEV_CLUSTER_DIR:-$REPO/.dev-cluster}"
export ENVTEST_DIR DEV_CLUSTER_DIR="$DIR"
KUBECTL="$ENVTEST_DIR/kubectl"
KUBECONFIG_FILE="$DIR/kubeconfig"
DEMO="$REPO/hack/demo"

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DEMO_DB="${DEMO_DB:-lethe_demo}"
WAIT_TIMEOUT="${DEMO_WAIT_TIMEOUT:-120s}"

NS=lethe-demo
OPERATOR_NS=lethe-system
SUBJECT_ID=7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71 # userId in hack/demo/subject.yaml

MANAGER="$REPO/bin/manager"
MANAGER_PID="$DIR/manager.pid"
MANAGER_LOG="$DIR/manager.log"
MANAGER_METRICS="$DIR/manager.metrics-address"
SNAPSHOTS="$DIR/demo"

log() { printf 'demo: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

kctl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
admin_psql() { PGOPTIONS="--client-min-messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
demo_psql() { PGOPTIONS="--client-min-messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$DEMO_DB" "$@"; }

require_tools() {
  local t missing=()
  for t in go psql pg_isready jq curl base64 openssl; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  ((${#missing[@]} == 0)) || die "missing ${missing[*]} (on Debian: apt-get install golang postgresql-client jq curl openssl)"
  if ! pg_isready -q -t 2; then
    if [[ "$PGHOST:$PGPORT" == 127.0.0.1:5432 ]]; then
      log "PostgreSQL does not answer on $PGHOST:$PGPORT; starting the local servers (hack/test-services.sh)"
      "$REPO/hack/test-services.sh"
    else
      die "PostgreSQL does not answer on $PGHOST:$PGPORT"
    fi
  fi
}

# ---- the manager ----------------------------------------------------------------

manager_alive() {
  local pid exe
  [[ -s "$MANAGER_PID" ]] || return 1
  pid="$(<"$MANAGER_PID")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ -z "$exe" || "$(basename "${exe% (deleted)}")" == manager ]]
}

stop_manager() {
  local pid i
  if manager_alive; then
    pid="$(<"$MANAGER_PID")"
    log "stopping the manager (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "the manager did not stop within 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$MANAGER_PID" "$MANAGER_METRICS"
}

port_in_use() {
  [[ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]] && return 0
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
    [[ " $* " == *" $p "* ]] && continue
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found"
}

start_manager() {
  log "building the manager (bin/manager)"
  (cd "$REPO" && go build -o "$MANAGER" .)
  local metrics probe pid api_pid i
  metrics="$(free_port)"
  probe="$(free_port "$metrics")"
  log "starting the manager (log: $MANAGER_LOG)"
  {
    printf '\n==== %s demo manager start ====\n' "$(date -u +%FT%TZ)"
  } >>"$MANAGER_LOG"
  # Own session, so it outlives make and this shell, like the control plane.
  KUBECONFIG="$KUBECONFIG_FILE" setsid "$MANAGER" \
    --leader-elect=false \
    --egress-allow=127.0.0.0/8 \
    --operator-namespace="$OPERATOR_NS" \
    --metrics-bind-address="127.0.0.1:$metrics" \
    --health-probe-bind-address="127.0.0.1:$probe" \
    >>"$MANAGER_LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$MANAGER_PID"
  echo "127.0.0.1:$metrics" >"$MANAGER_METRICS"
  # Watchdog: when the control plane goes away (make dev-cluster-down), the
  # manager goes too, instead of retrying against nothing forever.
  api_pid="$(<"$DIR/kube-apiserver.pid")"
  # shellcheck disable=SC2016 # $1 and $2 are the inner script's arguments
  setsid bash -c 'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 2; done; kill -TERM "$2" 2>/dev/null || true' \
    demo-watchdog "$api_pid" "$pid" >/dev/null 2>&1 </dev/null &
  for ((i = 0; i < 600; i++)); do
    if [[ "$(curl -fsS --max-time 1 "http://127.0.0.1:$probe/readyz" 2>/dev/null)" == ok ]]; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 25 "$MANAGER_LOG" >&2 || true
      die "the manager exited during startup (log above)"
    fi
    sleep 0.1
  done
  tail -n 25 "$MANAGER_LOG" >&2 || true
  die "the manager was not ready after 60s"
}

# ---- database and objects --------------------------------------------------------

reset_database() {
  log "recreating database $DEMO_DB on $PGHOST:$PGPORT"
  admin_psql -c "DROP DATABASE IF EXISTS \"$DEMO_DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DEMO_DB\""
  demo_psql -f "$DEMO/schema.sql"
}

reset_objects() {
  kctl apply -f "$DEMO/namespace.yaml" >/dev/null
  kctl create namespace "$OPERATOR_NS" --dry-run=client -o yaml | kctl apply -f - >/dev/null
  # This control plane has no garbage collector (no kube-controller-manager), so
  # the export Secrets owned by old requests are deleted explicitly.
  kctl -n "$NS" delete datasubjectrequests.privacy.lethe.dev --all --ignore-not-found --timeout=60s >/dev/null
  kctl -n "$NS" delete secrets -l privacy.lethe.dev/request --ignore-not-found --timeout=60s >/dev/null
  kctl -n "$NS" delete datastores.privacy.lethe.dev,retentionpolicies.privacy.lethe.dev,legalholds.privacy.lethe.dev --all --ignore-not-found --timeout=60s >/dev/null
}

apply_store() {
  local dsn="postgres://$PGUSER@$PGHOST:$PGPORT/$DEMO_DB?sslmode=disable"
  kctl -n "$NS" create secret generic demo-db --from-literal=dsn="$dsn" --dry-run=client -o yaml |
    kctl label --local -f - app.kubernetes.io/part-of=lethe-demo -o yaml |
    kctl apply -f - >/dev/null
  kctl apply -f "$DEMO/datastore.yaml" -f "$DEMO/retentionpolicy.yaml" -f "$DEMO/subject.yaml" >/dev/null
}

# wait_ready KIND/NAME...: kubectl wait for Ready; on failure show why.
wait_ready() {
  log "waiting for $* (kubectl wait --for=condition=Ready, timeout $WAIT_TIMEOUT)"
  if ! kctl -n "$NS" wait --for=condition=Ready --timeout="$WAIT_TIMEOUT" "$@" >/dev/null; then
    kctl -n "$NS" get "$@" -o yaml >&2 || true
    log "last lines of $MANAGER_LOG:"
    tail -n 25 "$MANAGER_LOG" >&2 || true
    die "$* did not become Ready"
  fi
}

# run_retention_now: start a sweep of the demo policy at once (once per
# annotation value) and wait for it to finish.
run_retention_now() {
  local value
  value="demo-$(date +%s)"
  log "running rpol/platform-db-retention now (annotation privacy.lethe.dev/run-now=$value)"
  kctl -n "$NS" annotate rpol platform-db-retention --overwrite "privacy.lethe.dev/run-now=$value" >/dev/null
  if ! kctl -n "$NS" wait rpol/platform-db-retention --for=jsonpath='{.status.lastRunNowValue}'="$value" --timeout="$WAIT_TIMEOUT" >/dev/null ||
    ! kctl -n "$NS" wait rpol/platform-db-retention --for=condition=Ready --timeout="$WAIT_TIMEOUT" >/dev/null; then
    kctl -n "$NS" get rpol platform-db-retention -o yaml >&2 || true
    tail -n 25 "$MANAGER_LOG" >&2 || true
    die "the retention sweep did not finish"
  fi
}

print_retention() {
  kctl -n "$NS" get rpol platform-db-retention -o json | jq -r '
    "  last run \(.status.lastRunTime) (run-now \(.status.lastRunNowValue // "-")), next \(.status.nextRunTime)",
    (.status.rules[]? |
      "  \(.name): \(.rowsAffected) row(s) swept, \(.rowsPastPeriod) still past their period (\(.rowsHeld // 0) held), \(.rowsWithoutDate // 0) without a date" +
      ([.children[]? | "; \(.rows) row(s) below in \(.collection): \(.action)"] | join("")) +
      ([.kept[]? | "; \(.rows) kept: \(.reason)"] | join("")) +
      (if .message then " (\(.message))" else "" end))'
}

snapshot() { # snapshot NAME: per-table counts and digests, and the subject's rows
  demo_psql -At -F '|' -v uid="$SUBJECT_ID" -f "$DEMO/snapshot.sql" >"$SNAPSHOTS/$1.counts"
  demo_psql -P pager=off -P footer=off -v uid="$SUBJECT_ID" -f "$DEMO/subject-rows.sql" >"$SNAPSHOTS/$1.rows"
}

# ---- summary -----------------------------------------------------------------------

print_requests() {
  local name
  for name in "$@"; do
    kctl -n "$NS" get dsr "$name" -o json | jq -r -f "$DEMO/receipt.jq"
    echo
  done
}

print_export() {
  local secret body
  secret="$(kctl -n "$NS" get dsr demo-access -o jsonpath='{.status.exportSecretRef.name}')"
  [[ -n "$secret" ]] || { echo "  (demo-access has no export Secret)"; return; }
  body="$(kctl -n "$NS" get secret "$secret" -o jsonpath='{.data.export\.json}' | base64 -d)"
  echo "  Secret $NS/$secret, key export.json: ${#body} bytes, owned by demo-access"
  jq -r -f "$DEMO/export.jq" <<<"$body"
  echo "    read it: kubectl -n $NS get secret $secret -o jsonpath='{.data.export\\.json}' | base64 -d | jq"
}

print_database() {
  local table before after b_others a_others others changed=0
  declare -A b_rows b_fp
  while IFS='|' read -r table before b_others; do
    b_rows[$table]=$before
    b_fp[$table]=$b_others
  done <"$SNAPSHOTS/before.counts"
  printf '  %-17s %6s %6s   %s\n' table before after "everyone else's rows"
  while IFS='|' read -r table after a_others; do
    others=unchanged
    if [[ "${b_fp[$table]}" != "$a_others" ]]; then
      others=CHANGED
      changed=1
    fi
    printf '  %-17s %6s %6s   %s\n' "$table" "${b_rows[$table]}" "$after" "$others"
  done <"$SNAPSHOTS/after.counts"
  echo "  (applications hold customer.content: outside every request's scope unless named)"
  echo
  echo "  The subject's rows before (account id $SUBJECT_ID):"
  sed 's/^/  /' "$SNAPSHOTS/before.rows"
  echo
  echo "  ... and after the erasure:"
  sed 's/^/  /' "$SNAPSHOTS/after.rows"
  return "$changed"
}

summary() {
  local metrics
  metrics="$(<"$MANAGER_METRICS")"
  cat <<EOF

================================================================================
 Lethe demo: namespace $NS, database $DEMO_DB on $PGHOST:$PGPORT
================================================================================

\$ kubectl get datastores,retentionpolicies,datasubjectrequests -n $NS
EOF
  kctl -n "$NS" get datastores,retentionpolicies,datasubjectrequests 2>&1 | sed 's/^/  /'
  cat <<EOF

-- Receipts (status of each request; never the subject's data) -----------------

EOF
  print_requests demo-access demo-erasure-dryrun demo-erasure
  echo "-- Access export -----------------------------------------------------------------"
  echo
  print_export
  cat <<EOF

-- Database: the subject's rows per table, before and after -----------------------

EOF
  local db_ok=0
  print_database || db_ok=$?
  cat <<EOF

-- Retention: platform-db-retention, run now (no waiting for "30 3 * * *") ---------

EOF
  print_retention
  cat <<EOF

-- Keep exploring (everything is still running) ------------------------------------

  export KUBECONFIG=$KUBECONFIG_FILE
  alias kubectl=$KUBECTL

  kubectl get dstore,rpol,dsr -n $NS
  kubectl get dsr demo-erasure -n $NS -o yaml     # the whole receipt
  kubectl annotate rpol platform-db-retention -n $NS --overwrite privacy.lethe.dev/run-now="\$(date +%s)"  # sweep again now
  kubectl events -n $NS                           # an Event per state change
  curl -s http://$metrics/metrics | grep '^lethe_'
  psql -h $PGHOST -p $PGPORT -U $PGUSER $DEMO_DB

  manager log: $MANAGER_LOG
  make demo-down                                  # stop it all, drop the database
EOF
  ((db_ok == 0)) || die "rows of other subjects changed: see the table above"
}

# ---- commands ----------------------------------------------------------------------

up() {
  require_tools
  "$REPO/hack/dev-cluster.sh" up >/dev/null
  mkdir -p "$SNAPSHOTS"
  stop_manager
  reset_database
  reset_objects
  apply_store
  start_manager
  wait_ready datastore/platform-db
  snapshot before

  log "filing demo-access and demo-erasure-dryrun (hack/demo/requests.yaml)"
  kctl apply -f "$DEMO/requests.yaml" >/dev/null
  wait_ready dsr/demo-access dsr/demo-erasure-dryrun
  log "filing demo-erasure (hack/demo/erasure.yaml)"
  kctl apply -f "$DEMO/erasure.yaml" >/dev/null
  wait_ready dsr/demo-erasure
  snapshot after
  run_retention_now
  summary
}

down() {
  stop_manager
  "$REPO/hack/dev-cluster.sh" down
  if command -v psql >/dev/null && pg_isready -q -t 2; then
    log "dropping database $DEMO_DB"
    admin_psql -c "DROP DATABASE IF EXISTS \"$DEMO_DB\" WITH (FORCE)"
  else
    log "PostgreSQL does not answer on $PGHOST:$PGPORT; database $DEMO_DB not dropped"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
