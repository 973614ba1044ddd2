#!/usr/bin/env bash
# Runs a real local Kubernetes control plane on 127.0.0.1: etcd,
# kube-apiserver and kube-controller-manager, built by ./build.sh.
#
#   e2e/controlplane/cluster.sh up       start it (no-op if already running)
#   e2e/controlplane/cluster.sh down     stop exactly what `up` started, remove its state
#   e2e/controlplane/cluster.sh status   exit 0 if running and ready
#
# For fault tests (e2e/tests/faults.rs), on a running plane:
#   e2e/controlplane/cluster.sh stop-component C [--kill]
#   e2e/controlplane/cluster.sh start-component C
#   e2e/controlplane/cluster.sh restart-component C [--kill]
# C is etcd, apiserver or controller-manager. stop sends SIGTERM (SIGKILL
# after 10s), or with --kill SIGKILL at once, as a crash would; start runs the
# component again with the flags, ports and data `up` gave it and waits until
# it serves (etcd healthy, apiserver /readyz). `down` still stops whatever is
# running.
#
# State lives in $BASELINER_CLUSTER_DIR (default: <repo>/target/cluster):
#   kubeconfig        admin kubeconfig (client certificate in system:masters)
#   bin/kubectl       the kubectl built with the plane (and the other binaries)
#   env               `source` it for KUBECONFIG and PATH
#   pki/ etcd/ logs/ run/   certificates, etcd data, logs, pidfiles
#
# Ports: the apiserver and etcd ports come from BASELINER_APISERVER_PORT,
# BASELINER_ETCD_PORT and BASELINER_ETCD_PEER_PORT when set (an error if in
# use); otherwise the first free port from 16443, 12379 and 12380 upwards.
#
# BASELINER_ETCD_COMPACTION_INTERVAL (e.g. 10s) sets the apiserver's
# --etcd-compaction-interval (default 5m), so a fault test sees watch history
# compacted within seconds. `up` records it with the ports; restarts keep it.
set -eEuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE="${BASELINER_CLUSTER_DIR:-$REPO/target/cluster}"
READY_TIMEOUT="${BASELINER_READY_TIMEOUT:-120}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager)
SERVICE_CIDR="10.0.0.0/24"
SERVICE_IP="10.0.0.1"

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes -------------------------------------------------------------

pidfile() { echo "$STATE/run/$1.pid"; }

# The pid in the component's pidfile, if that process is alive and really is
# the component started for this state directory (pids get reused).
live_pid() {
  local f pid
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE/" || return 1
  echo "$pid"
}

any_running() {
  local c
  for c in "${COMPONENTS[@]}"; do live_pid "$c" >/dev/null && return 0; done
  return 1
}

stop_component() {
  local c="$1" pid i
  pid="$(live_pid "$c")" || { rm -f "$(pidfile "$c")"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$c (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$(pidfile "$c")"
  log "stopped $c (pid $pid)"
}

stop_all() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[$i]}"; done
}

start_component() {
  local c="$1"; shift
  # Appends: a restarted component keeps the log of its earlier run.
  setsid "$BIN/$c" "$@" >>"$STATE/logs/$c.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$c")"
}

tail_logs() {
  local c
  for c in "${COMPONENTS[@]}"; do
    [[ -f "$STATE/logs/$c.log" ]] || continue
    echo "----- last lines of $STATE/logs/$c.log -----" >&2
    tail -n 25 "$STATE/logs/$c.log" >&2
  done
}

# --- ports -----------------------------------------------------------------

port_in_use() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && return 0
    return 1
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

# pick_port VAR_NAME DEFAULT_START [TAKEN...]
pick_port() {
  local var="$1" start="$2"; shift 2
  local wanted="${!var:-}" p
  if [[ -n "$wanted" ]]; then
    port_in_use "$wanted" && die "port $wanted ($var) is already in use on 127.0.0.1; free it or choose another"
    echo "$wanted"; return
  fi
  for ((p = start; p < start + 200; p++)); do
    [[ " $* " == *" $p "* ]] && continue
    port_in_use "$p" || { echo "$p"; return; }
  done
  die "no free port in $start..$((start + 199)) for $var; set $var to a free port"
}

# --- certificates ----------------------------------------------------------

# issue NAME SUBJECT EXTENSIONS: a P-256 key and a certificate signed by the CA.
issue() {
  local name="$1" subj="$2" ext="$3" pki="$STATE/pki"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  printf '%b\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
  local pki="$STATE/pki"
  mkdir -p -m 700 "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 -sha256 \
    -subj "/CN=baseliner-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  issue apiserver "/CN=kube-apiserver" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  local client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  issue admin "/O=system:masters/CN=baseliner-e2e-admin" "$client"
  issue controller-manager "/CN=system:kube-controller-manager" "$client"
  # Service-account token signing key pair (TokenRequest, bound tokens).
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key
}

b64() { base64 -w0 <"$1"; }

write_kubeconfig() { # FILE USER CERT KEY
  local file="$1" user="$2" cert="$3" key="$4"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: baseliner-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$STATE/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$cert")
    client-key-data: $(b64 "$key")
contexts:
- name: baseliner-e2e
  context:
    cluster: baseliner-e2e
    user: $user
current-context: baseliner-e2e
EOF
  chmod 600 "$file"
}

# --- the components, as `up` starts them ----------------------------------
# They read BIN, STATE, the ports and COMPACTION_INTERVAL.

start_etcd() {
  start_component etcd \
    --name=baseliner-e2e \
    --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="baseliner-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --unsafe-no-fsync=true \
    --log-level=warn
}

start_apiserver() {
  local extra=()
  if [[ -n "${COMPACTION_INTERVAL:-}" ]]; then
    extra+=(--etcd-compaction-interval="$COMPACTION_INTERVAL")
  fi
  start_component kube-apiserver \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$API_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --cert-dir="$STATE/pki" \
    --tls-cert-file="$STATE/pki/apiserver.crt" \
    --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" \
    --authorization-mode=RBAC \
    --anonymous-auth=false \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$STATE/pki/sa.pub" \
    --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --endpoint-reconciler-type=none \
    --allow-privileged=true \
    --profiling=false \
    "${extra[@]}" \
    --v=1
}

start_controller_manager() {
  start_component kube-controller-manager \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port=0 \
    --cert-dir="$STATE/kcm-certs" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$STATE/pki/sa.key" \
    --root-ca-file="$STATE/pki/ca.crt" \
    --cluster-signing-cert-file="$STATE/pki/ca.crt" \
    --cluster-signing-key-file="$STATE/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --flex-volume-plugin-dir="$STATE/flexvolume" \
    --profiling=false \
    --v=1
}

# --- commands --------------------------------------------------------------

kubectl_() { "$STATE/bin/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

ready() {
  [[ -x "$STATE/bin/kubectl" && -f "$STATE/kubeconfig" ]] || return 1
  [[ "$(kubectl_ --request-timeout=5s get --raw /readyz 2>/dev/null)" == "ok" ]]
}

cmd_status() {
  local c pid ok=0
  for c in "${COMPONENTS[@]}"; do
    if pid="$(live_pid "$c")"; then echo "$c: running (pid $pid)"; else echo "$c: not running"; ok=1; fi
  done
  if ((ok == 0)) && ready; then
    echo "apiserver: ready at $(sed -n 's/ *server: //p' "$STATE/kubeconfig")"
    echo "kubeconfig: $STATE/kubeconfig"
    return 0
  fi
  return 1
}

cmd_up() {
  local c all=1
  for c in "${COMPONENTS[@]}"; do live_pid "$c" >/dev/null || all=0; done
  if ((all)) && ready; then
    log "already running; kubeconfig: $STATE/kubeconfig"
    return 0
  fi
  if any_running; then
    log "a previous plane in $STATE is partly running; stopping it first"
    stop_all
  fi

  command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"
  command -v setsid >/dev/null || die "setsid is required (apt-get install util-linux)"
  local started=$SECONDS
  BIN="$("$HERE/build.sh")"
  [[ -x "$BIN/kube-apiserver" ]] || die "build.sh did not produce binaries in $BIN"

  ETCD_PORT="$(pick_port BASELINER_ETCD_PORT 12379)"
  ETCD_PEER_PORT="$(pick_port BASELINER_ETCD_PEER_PORT 12380 "$ETCD_PORT")"
  API_PORT="$(pick_port BASELINER_APISERVER_PORT 16443 "$ETCD_PORT" "$ETCD_PEER_PORT")"

  rm -rf "$STATE"
  mkdir -p "$STATE"/{bin,logs,run,etcd,flexvolume,kcm-certs}
  chmod 700 "$STATE/etcd"
  for c in etcd kube-apiserver kube-controller-manager kubectl; do ln -s "$BIN/$c" "$STATE/bin/$c"; done
  BIN="$STATE/bin"

  make_pki
  write_kubeconfig "$STATE/kubeconfig" baseliner-e2e-admin "$STATE/pki/admin.crt" "$STATE/pki/admin.key"
  write_kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager \
    "$STATE/pki/controller-manager.crt" "$STATE/pki/controller-manager.key"
  cat >"$STATE/env" <<EOF
export KUBECONFIG="$STATE/kubeconfig"
export PATH="$STATE/bin:\$PATH"
EOF
  cat >"$STATE/ports" <<EOF
apiserver $API_PORT
etcd $ETCD_PORT
etcd-peer $ETCD_PEER_PORT
EOF
  COMPACTION_INTERVAL="${BASELINER_ETCD_COMPACTION_INTERVAL:-}"
  echo "etcd-compaction-interval ${COMPACTION_INTERVAL:-default}" >"$STATE/settings"

  # From here on, anything that fails stops what was started.
  trap 'log "startup failed"; tail_logs; stop_all' ERR

  start_etcd
  start_apiserver
  start_controller_manager

  log "waiting up to ${READY_TIMEOUT}s for the apiserver on https://127.0.0.1:$API_PORT ..."
  local deadline=$((SECONDS + READY_TIMEOUT))
  until ready; do
    for c in "${COMPONENTS[@]}"; do
      live_pid "$c" >/dev/null || { log "$c exited during startup"; false; }
    done
    ((SECONDS < deadline)) || { log "apiserver not ready after ${READY_TIMEOUT}s"; false; }
    sleep 0.25
  done
  # kube-controller-manager at work: the default ServiceAccount and the
  # aggregated rules of the built-in `view` ClusterRole.
  until kubectl_ -n default get serviceaccount default >/dev/null 2>&1 &&
    [[ -n "$(kubectl_ get clusterrole view -o 'jsonpath={.rules[*].resources}' 2>/dev/null)" ]]; do
    for c in "${COMPONENTS[@]}"; do
      live_pid "$c" >/dev/null || { log "$c exited during startup"; false; }
    done
    ((SECONDS < deadline)) || { log "kube-controller-manager not effective after ${READY_TIMEOUT}s"; false; }
    sleep 0.25
  done
  trap - ERR
  log "ready in $((SECONDS - started))s: apiserver https://127.0.0.1:$API_PORT"
  log "kubeconfig: $STATE/kubeconfig  (source $STATE/env for KUBECONFIG and kubectl)"
}

# --- one component at a time (fault tests) --------------------------------

# The process name of a component as the user names it.
component_name() {
  case "$1" in
    etcd) echo etcd ;;
    apiserver | kube-apiserver) echo kube-apiserver ;;
    controller-manager | kube-controller-manager) echo kube-controller-manager ;;
    *) die "unknown component '$1' (etcd, apiserver or controller-manager)" ;;
  esac
}

# Ports and settings of the plane `up` started in $STATE.
load_plane() {
  [[ -f "$STATE/ports" ]] || die "no plane in $STATE (run up first)"
  API_PORT="$(awk '$1 == "apiserver" {print $2}' "$STATE/ports")"
  ETCD_PORT="$(awk '$1 == "etcd" {print $2}' "$STATE/ports")"
  ETCD_PEER_PORT="$(awk '$1 == "etcd-peer" {print $2}' "$STATE/ports")"
  COMPACTION_INTERVAL="$(awk '$1 == "etcd-compaction-interval" && $2 != "default" {print $2}' \
    "$STATE/settings" 2>/dev/null || true)"
  BIN="$STATE/bin"
}

etcd_healthy() {
  local reply
  reply="$(
    exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$ETCD_PORT" || exit 1
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    timeout 5 cat <&3
  )" || return 1
  [[ "$reply" == *'"health":"true"'* ]]
}

# cmd_stop_component C [--kill]: SIGTERM (then SIGKILL after 10s), or at
# once SIGKILL, as a crash would.
cmd_stop_component() {
  local c pid
  c="$(component_name "${1:-}")"
  load_plane
  pid="$(live_pid "$c")" || { log "$c is not running"; return 0; }
  if [[ "${2:-}" == "--kill" ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$(pidfile "$c")"
    log "killed $c (pid $pid)"
    return 0
  fi
  stop_component "$c"
}

cmd_start_component() {
  local c started=$SECONDS deadline
  c="$(component_name "${1:-}")"
  load_plane
  if live_pid "$c" >/dev/null; then
    log "$c is already running"
    return 0
  fi
  case "$c" in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
    kube-controller-manager) start_controller_manager ;;
  esac
  deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    live_pid "$c" >/dev/null || { tail -n 25 "$STATE/logs/$c.log" >&2; die "$c exited during startup"; }
    case "$c" in
      etcd) etcd_healthy && break ;;
      kube-apiserver) ready && break ;;
      kube-controller-manager) break ;;
    esac
    ((SECONDS < deadline)) || die "$c not serving after ${READY_TIMEOUT}s (log: $STATE/logs/$c.log)"
    sleep 0.25
  done
  log "started $c (pid $(live_pid "$c")), serving after $((SECONDS - started))s"
}

cmd_down() {
  if [[ ! -d "$STATE" ]]; then
    log "nothing to stop ($STATE does not exist)"
    return 0
  fi
  stop_all
  rm -rf "$STATE"
  log "removed $STATE"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  stop-component) cmd_stop_component "${2:-}" "${3:-}" ;;
  start-component) cmd_start_component "${2:-}" ;;
  restart-component) cmd_stop_component "${2:-}" "${3:-}" && cmd_start_component "${2:-}" ;;
  *)
    echo "usage: $0 up|down|status|stop-component C [--kill]|start-component C|restart-component C [--kill]" >&2
    echo "  (C: etcd, apiserver or controller-manager)" >&2
    exit 2
    ;;
esac
