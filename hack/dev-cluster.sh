#!/usr/bin/env bash
# dev-cluster.sh up|down|status — a local control plane (etcd + kube-apiserver, no
# nodes, no controller-manager) for running Lethe against with `make run`.
#
#   up      start etcd and kube-apiserver in the background on free loopback ports,
#           write a kubeconfig (admin user in system:masters, client-certificate
#           auth), install the CRDs from config/crd/bases (and the admission
#           policies of config/admission) and wait until they are
#           Established. When already running, re-applies the CRDs (a no-op unless
#           `make manifests` changed them) and prints the kubeconfig path.
#   down    stop both processes and remove every piece of state.
#   status  say whether it is running (exit 0) or not (exit 1).
#
# Binaries come from ENVTEST_DIR (built by `make envtest`); state, certificates,
# logs and pids live in DEV_CLUSTER_DIR (default .dev-cluster, git-ignored).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.37.2}"
ENVTEST_DIR="${ENVTEST_DIR:-$HOME/.local/share/kubebuilder-envtest/k8s/${K8S_VERSION}-linux-amd64}"
DIR="${DEV_CLUSTER_DIR:-$REPO/.dev-cluster}"
START_TIMEOUT="${DEV_CLUSTER_START_TIMEOUT:-120}" # seconds, per process

ETCD="$ENVTEST_DIR/etcd"
APISERVER="$ENVTEST_DIR/kube-apiserver"
KUBECTL="$ENVTEST_DIR/kubectl"
KUBECONFIG_FILE="$DIR/kubeconfig"
PKI="$DIR/pki"
LOGS="$DIR/logs"

log() { printf 'dev-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_binaries() {
  local b missing=()
  for b in "$ETCD" "$APISERVER" "$KUBECTL"; do
    [[ -x "$b" ]] || missing+=("$b")
  done
  if ((${#missing[@]})); then
    die "missing ${missing[*]}
  build the control plane first:  make envtest   (or set ENVTEST_DIR)"
  fi
  command -v openssl >/dev/null || die "openssl is required to create the cluster's certificates (apt-get install openssl)"
}

# alive NAME: true when DIR/NAME.pid names a running process of that binary.
# Checking the executable guards against a stale pid reused by another process.
alive() {
  local pidf="$DIR/$1.pid" pid exe
  [[ -s "$pidf" ]] || return 1
  pid="$(<"$pidf")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ -z "$exe" || "$(basename "${exe% (deleted)}")" == "$1" ]]
}

# stop NAME: SIGTERM the process in DIR/NAME.pid, SIGKILL after 15 s.
stop() {
  local name="$1" pid i
  if alive "$name"; then
    pid="$(<"$DIR/$name.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not stop within 15s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$DIR/$name.pid"
}

# port_in_use PORT: something listens on (or accepts connections to) the port.
port_in_use() {
  if command -v ss >/dev/null; then
    [[ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]] && return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port EXCLUDED...: a loopback port nothing uses, different from the excluded ones.
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
    [[ " $* " == *" $p "* ]] && continue
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found"
}

kctl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

ready() { [[ "$(kctl get --raw /readyz --request-timeout=2s 2>/dev/null)" == ok ]]; }

print_usage_hint() {
  echo "$KUBECONFIG_FILE"
  cat >&2 <<EOF

Control plane is up (kube-apiserver $(<"$DIR/server")), CRDs installed.
  export KUBECONFIG=$KUBECONFIG_FILE
  export PATH=$ENVTEST_DIR:\$PATH   # kubectl v${K8S_VERSION}
  make run                          # run the manager against it
  make dev-cluster-down             # stop it and remove its state
EOF
}

install_crds() {
  log "installing CRDs from config/crd/bases"
  kctl apply --server-side --force-conflicts --field-manager=lethe-dev-cluster -f "$REPO/config/crd/bases" >&2 || return 1
  kctl wait --for=condition=Established --timeout=60s -f "$REPO/config/crd/bases" >&2 || return 1
  # The admission policies decide what a weakening is (and refuse inline
  # identities in Erasure requests), as in a real installation.
  log "installing the admission policies from config/admission"
  kctl apply --server-side --force-conflicts --field-manager=lethe-dev-cluster -k "$REPO/config/admission" >&2 || return 1
}

# ---- certificates -------------------------------------------------------------

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  local days=3650
  (
    cd "$PKI"
    # Self-signed CA: signs the serving certificate and the admin client certificate.
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout ca.key -out ca.crt -days "$days" -subj "/CN=lethe-dev-cluster-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    sign() { # sign NAME SUBJECT EXTENSIONS
      openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%b\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$1.crt" -days "$days" -extfile "$1.ext"
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"
    # Organisation = group: system:masters is bound to cluster-admin by default RBAC.
    sign admin "/O=system:masters/CN=lethe-dev-admin" \
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
    # Service-account token signing key pair.
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    rm -f ca.srl
  ) >"$LOGS/openssl.log" 2>&1 || { cat "$LOGS/openssl.log" >&2; die "creating certificates failed"; }
}

write_kubeconfig() {
  local server="$1" b64="base64 -w0"
  local tmp="$KUBECONFIG_FILE.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lethe-dev
  cluster:
    server: $server
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: lethe-dev-admin
  user:
    client-certificate-data: $($b64 <"$PKI/admin.crt")
    client-key-data: $($b64 <"$PKI/admin.key")
contexts:
- name: lethe-dev
  context:
    cluster: lethe-dev
    user: lethe-dev-admin
    namespace: default
current-context: lethe-dev
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$KUBECONFIG_FILE"
}

# ---- processes ----------------------------------------------------------------

# launch NAME ARGS...: start a binary of ENVTEST_DIR detached from this shell
# (own session, so neither make nor a closing terminal stops it), log to LOGS.
launch() {
  local name="$1"; shift
  setsid "$ENVTEST_DIR/$name" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo "$!" >"$DIR/$name.pid"
}

# wait_for NAME DESCRIPTION COMMAND...: poll COMMAND until it succeeds; fail early if the process died.
wait_for() {
  local name="$1" what="$2" deadline=$((SECONDS + START_TIMEOUT)); shift 2
  until "$@"; do
    if ! alive "$name"; then
      log "$name exited during startup; last lines of $LOGS/$name.log:"
      tail -n 25 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$what not ready after ${START_TIMEOUT}s; last lines of $LOGS/$name.log:"
      tail -n 25 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

etcd_healthy() {
  local port="$1"
  if command -v curl >/dev/null; then
    curl -fsS --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"health":"true"'
  else
    port_in_use "$port"
  fi
}

# On a failed start: stop what was started, keep only the logs for diagnosis.
cleanup_failed_start() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)); then
    log "start failed; stopping what was started (logs kept in $LOGS)"
    stop kube-apiserver
    stop etcd
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  fi
  exit "$rc"
}

up() {
  require_binaries
  if alive etcd && alive kube-apiserver && [[ -s "$KUBECONFIG_FILE" ]] && ready; then
    log "already running"
    install_crds || die "the API server refused the CRDs (see above)"
    print_usage_hint
    return 0
  fi
  if [[ -e "$DIR" ]]; then
    log "removing stale state in $DIR"
    down_quiet
  fi

  mkdir -p "$DIR" "$LOGS"
  trap cleanup_failed_start EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local etcd_port peer_port api_port
  etcd_port="$(free_port)"
  peer_port="$(free_port "$etcd_port")"
  api_port="$(free_port "$etcd_port" "$peer_port")"
  local server="https://127.0.0.1:$api_port"
  echo "$server" >"$DIR/server"

  log "creating certificates in $PKI"
  gen_pki

  log "starting etcd on 127.0.0.1:$etcd_port"
  launch etcd \
    --name=dev \
    --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="dev=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync=true \
    --log-level=warn
  wait_for etcd "etcd" etcd_healthy "$etcd_port"

  log "starting kube-apiserver on $server"
  # Flags after controller-runtime's envtest (pkg/internal/testing/controlplane),
  # with client-certificate authentication for the admin user.
  launch kube-apiserver \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --secure-port="$api_port" \
    --cert-dir="$PKI" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=RBAC \
    --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer="$server" \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true
  write_kubeconfig "$server"
  wait_for kube-apiserver "kube-apiserver /readyz" ready
  trap - EXIT INT TERM

  # The control plane stays up even if the CRDs are refused: fix them, then run
  # `make dev-cluster` again, which re-applies them.
  install_crds || die "the API server refused the CRDs (see above); the control plane is running:
  fix the types, then run 'make dev-cluster' again (or 'make dev-cluster-down')"
  print_usage_hint
}

down_quiet() {
  stop kube-apiserver
  stop etcd
  rm -rf "$DIR"
}

down() {
  if alive kube-apiserver || alive etcd; then
    log "stopping kube-apiserver and etcd"
  elif [[ -e "$DIR" ]]; then
    log "not running; removing leftover state"
  else
    log "not running"
  fi
  down_quiet
}

status() {
  if alive etcd && alive kube-apiserver && ready; then
    echo "running: $(<"$DIR/server")  KUBECONFIG=$KUBECONFIG_FILE"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
