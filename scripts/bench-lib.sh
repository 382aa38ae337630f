# shellcheck shell=bash disable=SC2034
# (SC2034: the globals set here are read by the scripts that source this.)
# Shared machinery of the benchmark scripts (bench.sh, bench-transfer.sh):
# sourced, not run. It gives
#   log / die / now / calc               messages, timestamps, float arithmetic
#   bench_unset_hdp_env                  drop the caller's HDP_* variables
#   bench_ensure_packages CMD:PKG ...    apt-get install what is missing (root)
#   bench_init_work PREFIX               a temp dir $work, and traps that stop
#                                        every process in bg_pids, run the
#                                        cleanup_cmds and delete $work at exit
#   free_port / wait_listen / in_ns      ports and network namespaces
#   ssh_setup / sshd_start / sshd_stop   a throwaway sshd and the client options
#   bench_hdp_bin                        the hdp binary (BENCH_HDP_BIN or a build)
#   start_node / hdp_cli / stop_node /   harddrive-party nodes driven through
#   node_info / wait_indexed /           the `hdp` CLI
#   connect_node / hdp_download
# The caller sets `set -euo pipefail` and LC_ALL=C, and cds to the repo root.

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
# (%.15g, not awk's %.6g: a timestamp keeps its fraction; parenthesized: a
# bare ">" would redirect print)
calc() { awk -v OFMT=%.15g "BEGIN { print ($1) }"; }

# The node's own HDP_* variables (an HDP_SHARE or HDP_TOKEN from the caller's
# shell) would change what the nodes and the client commands do.
bench_unset_hdp_env() {
  local v
  while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^HDP_' || true)
}

# bench_ensure_packages CMD:PACKAGE ...: installs, with one apt-get call, the
# packages whose command (a name on PATH, or an absolute path to any file) is
# missing.
# Returns 1 (installing nothing) when some are missing and we are not root.
bench_ensure_packages() {
  local pair cmd pkg missing=()
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if [[ $cmd == /* ]]; then [ -e "$cmd" ] && continue; else command -v "$cmd" > /dev/null && continue; fi
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages: ${missing[*]} (not root: cannot apt-get install them)"
    return 1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# --- temp dir, background processes, cleanup ----------------------------------
bg_pids=()      # processes to stop at exit (forget_pid drops a stopped one)
cleanup_cmds=() # shell commands run at exit, last registered first
made_privsep=""
bench_cleanup() {
  local p i
  for p in "${bg_pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=""
    for p in "${bg_pids[@]}"; do kill -0 "$p" 2> /dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in "${bg_pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  for ((i = ${#cleanup_cmds[@]} - 1; i >= 0; i--)); do eval "${cleanup_cmds[i]}" || true; done
  if [ -n "${work:-}" ] && [ -d "$work" ]; then
    if [ -n "${BENCH_KEEP_WORK:-}" ]; then log "kept $work"; else rm -rf "$work"; fi
  fi
  if [ -n "$made_privsep" ]; then rmdir /run/sshd 2> /dev/null || true; fi
}
bench_init_work() { # PREFIX: makes $work and sets the exit traps
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
forget_pid() { # drop a stopped process from the cleanup list
  local p keep=()
  for p in "${bg_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  bg_pids=("${keep[@]}")
}
stop_pid() { # PID: SIGTERM, SIGKILL after 5 s, reap, forget
  kill -TERM "$1" 2> /dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
  forget_pid "$1"
}

# in_ns NS CMD...: run CMD in network namespace NS ("" = this one).
in_ns() {
  local ns=$1
  shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}
# ns_prefix NS: sets the array nsx to `ip netns exec NS` (empty for ""), for
# commands started in the background: `"${nsx[@]}" CMD &` makes $! CMD's own
# pid (ip execs CMD), where a function in the background would be a subshell.
nsx=()
ns_prefix() {
  if [ -n "$1" ]; then nsx=(ip netns exec "$1"); else nsx=(); fi
}
# tmo_ns SECONDS NS CMD...: the same, bounded by `timeout`.
tmo_ns() {
  local secs=$1 ns=$2
  shift 2
  if [ -n "$ns" ]; then timeout "$secs" ip netns exec "$ns" "$@"; else timeout "$secs" "$@"; fi
}

# --- ports (read from /proc/net/tcp; no ss or netstat needed) -----------------
port_in_use() { grep -qi "$(printf ':%04X ' "$1")" /proc/net/tcp /proc/net/tcp6 2> /dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}
ip_hex() { # 10.231.77.2 -> 024DE70A, as /proc/net/tcp prints it (little endian)
  local a b c d
  IFS=. read -r a b c d <<< "$1"
  printf '%02X%02X%02X%02X' "$d" "$c" "$b" "$a"
}
# wait_listen PORT PID WHAT [IP]: wait until PID listens on IP:PORT (TCP; IP
# 127.0.0.1 by default). Reads /proc/PID/net/tcp, so it sees PID's namespace.
wait_listen() {
  local pat ip=${4:-127.0.0.1}
  pat="$(ip_hex "$ip"):$(printf '%04X' "$1") 00000000:0000 0A"
  for _ in $(seq 1 100); do
    kill -0 "$2" 2> /dev/null || { echo "bench: $3 exited before listening" >&2; return 1; }
    grep -q "$pat" "/proc/$2/net/tcp" 2> /dev/null && return 0
    sleep 0.1
  done
  echo "bench: $3 is not listening on $ip:$1 after 10 s" >&2
  return 1
}

# --- a throwaway sshd ---------------------------------------------------------
# ssh_setup DIR: host and client keys in DIR; sets ssh_dir, ssh_cipher (the
# fastest offered: aes128-gcm@openssh.com, or BENCH_SSH_CIPHER) and ssh_user.
ssh_dir="" ssh_cipher="" ssh_user="" sshd_pid="" sshd_port="" sshd_ip=""
ssh_setup() {
  ssh_dir=$1
  rm -rf "$ssh_dir"
  mkdir -p "$ssh_dir"
  chmod 700 "$ssh_dir"
  ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$ssh_dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$ssh_dir/client_key"
  cp "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
  chmod 600 "$ssh_dir/authorized_keys"
  local ciphers
  ciphers=$(ssh -Q cipher)
  if [ -n "${BENCH_SSH_CIPHER:-}" ]; then
    ssh_cipher=$BENCH_SSH_CIPHER
  elif [[ $'\n'$ciphers$'\n' == *$'\naes128-gcm@openssh.com\n'* ]]; then
    ssh_cipher=aes128-gcm@openssh.com
  else
    ssh_cipher=chacha20-poly1305@openssh.com
  fi
  ssh_user=$(id -un)
}
# ssh_opts: the client options (after ssh_setup), in the array ssh_opts.
ssh_opts=()
ssh_set_opts() {
  ssh_opts=(-F /dev/null -i "$ssh_dir/client_key" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout=10 -o Compression=no -c "$ssh_cipher")
}
# ssh_cmd: the same options as one string, for rsync -e (no spaces in the paths).
ssh_cmd() { echo "ssh ${ssh_opts[*]} -p $sshd_port"; }
# sshd_start [NS] [IP] [CLIENT_NS]: starts sshd (after ssh_setup) on IP (127.0.0.1) in
# namespace NS, and checks a login from CLIENT_NS (default NS) once.
sshd_start() {
  local ns=${1:-} ip=${2:-127.0.0.1} client_ns=${3:-${1:-}} d=$ssh_dir
  sshd_port=$(free_port) || die "no free port"
  sshd_ip=$ip
  cat > "$d/sshd_config" << EOF
Port $sshd_port
ListenAddress $ip
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Ciphers $ssh_cipher
Compression no
UseDNS no
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
  # sshd running as root wants its privilege separation directory.
  if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    made_privsep=1
  fi
  ns_prefix "$ns"
  "${nsx[@]}" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2> "$d/sshd.log" &
  sshd_pid=$!
  bg_pids+=("$sshd_pid")
  wait_listen "$sshd_port" "$sshd_pid" "sshd" "$ip" || { cat "$d/sshd.log" >&2; die "sshd did not start"; }
  ssh_set_opts
  # Check the login once outside the timing, so a setup problem shows as one.
  tmo_ns 30 "$client_ns" ssh "${ssh_opts[@]}" -p "$sshd_port" "$ssh_user@$ip" true \
    || { cat "$d/sshd.log" >&2; die "cannot log in to the throwaway sshd on $ip:$sshd_port"; }
}
sshd_stop() {
  [ -n "$sshd_pid" ] || return 0
  stop_pid "$sshd_pid"
  sshd_pid=""
}

# --- harddrive-party nodes ------------------------------------------------------
hdp=""
# bench_hdp_bin [PROFILE]: sets hdp: BENCH_HDP_BIN, or a build with PROFILE
# (release by default; bench.sh asks for dist, the profile packages ship).
bench_hdp_bin() {
  local profile=${1:-release}
  if [ -n "${BENCH_HDP_BIN:-}" ]; then
    hdp=$BENCH_HDP_BIN
  else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
    cargo build --profile "$profile" --locked -p hdp-node --bin hdp >&2
    hdp="$CARGO_TARGET_DIR/$profile/hdp"
  fi
  [ -x "$hdp" ] || die "no hdp binary at $hdp"
  hdp=$(cd "$(dirname "$hdp")" && pwd)/$(basename "$hdp")
}

declare -A node_pid=() node_http=() node_data=() node_dl=() node_ns=() node_ip=() node_dir=()
hdp_start_help=""
# start_node NAME SHAREDIR [--ns NS] [--ip IP] [--mqtt URL] [--mdns]
#            [--listen ADDR] [VAR=VALUE ...]
# A fresh node (new identity, index and download dir) on topic `bench`,
# sharing SHAREDIR, listening for QUIC on IP:0 (127.0.0.1), its HTTP API on
# 127.0.0.1:0 in its namespace; MQTT, STUN, NAT-PMP and mDNS off unless
# asked for. VAR=VALUE pairs go into the node's environment, except
# HDP_BENCH_BIN=PATH, which runs this node from another hdp binary (the A/B
# of a change that has no switch: BENCH_VARIANTS="old:HDP_BENCH_BIN=/tmp/hdp-old").
start_node() {
  local n=$1 share=$2 ns="" ip=127.0.0.1 mqtt="" mdns="" listen="" envs=() extra=() pid url dir bin=$hdp
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --ns) ns=$2; shift 2 ;;
      --ip) ip=$2; shift 2 ;;
      --mqtt) mqtt=$2; shift 2 ;;
      --mdns) mdns=1; shift ;;
      --listen) listen=$2; shift 2 ;;
      HDP_BENCH_BIN=*) bin=${1#HDP_BENCH_BIN=}; shift ;;
      *=*) envs+=("$1"); shift ;;
      *) die "start_node: unknown argument '$1'" ;;
    esac
  done
  dir="$work/node-$n"
  rm -rf "$dir"
  mkdir -p "$dir/dl"
  [ -n "$hdp_start_help" ] || hdp_start_help=$("$hdp" start --help 2>&1 || true)
  # Optional flags, passed only when this build has them (--mqtt exactly,
  # not some --mqtt-foo).
  local flag_end='([^-[:alnum:]]|$)'
  if [ -z "$mdns" ] && [[ $hdp_start_help =~ --no-mdns$flag_end ]]; then extra+=(--no-mdns); fi
  if [[ $hdp_start_help =~ --mqtt$flag_end ]]; then extra+=(--mqtt "${mqtt:-off}"); fi
  if [[ $hdp_start_help =~ --stun$flag_end ]]; then extra+=(--stun off); fi
  if [[ $hdp_start_help =~ --no-portmap$flag_end ]]; then extra+=(--no-portmap); fi
  ns_prefix "$ns"
  "${nsx[@]}" env "${envs[@]}" "$bin" start --data-dir "$dir/data" --http 127.0.0.1:0 \
    --listen "${listen:-$ip:0}" --topic bench --share "$share" --download-dir "$dir/dl" "${extra[@]}" \
    > "$dir/out" 2> "$dir/log" &
  pid=$!
  bg_pids+=("$pid")
  url=$(wait_node_link "$n" "$pid" "$dir")
  node_pid[$n]=$pid
  node_http[$n]=$url
  node_data[$n]="$dir/data"
  node_dl[$n]="$dir/dl"
  node_ns[$n]=$ns
  node_ip[$n]=$ip
  node_dir[$n]=$dir
}
# wait_node_link NODE PID DIR: prints HOST:PORT of the HTTP API once the
# node started as PID has printed its login link to DIR/out (60 s at most).
wait_node_link() {
  local url=""
  for _ in $(seq 1 600); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/#token=' "$3/out" 2> /dev/null | head -n 1 || true)
    [ -n "$url" ] && break
    kill -0 "$2" 2> /dev/null || { cat "$3/log" >&2; die "hdp node $1 exited at start"; }
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$3/log" >&2; die "hdp node $1 printed no http://127.0.0.1:PORT/#token= line in 60 s"; }
  url=${url#http://}
  echo "${url%%/*}"
}
# hdp_cli NODE CMD ARGS...: run a client command against NODE (in its
# namespace), bounded in time.
hdp_cli() {
  local n=$1
  shift
  tmo_ns 60 "${node_ns[$n]}" "$hdp" "$@" --http "${node_http[$n]}" --data-dir "${node_data[$n]}"
}
# proc_kib PID FIELD: VmRSS / VmHWM of PID in KiB, or "?".
proc_kib() {
  local status
  status=$(cat "/proc/$1/status" 2> /dev/null || true)
  if [[ $status =~ $2:[[:space:]]*([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; else echo "?"; fi
}
# stop_node NODE: reads its VmHWM and VmRSS (KiB) into stopped_hwm and
# stopped_rss and its CPU seconds into stopped_cpu, then stops it with
# SIGTERM (SIGKILL after 15 s). Not in a subshell: only this shell can reap it.
stopped_hwm="" stopped_rss="" stopped_cpu=""
clk_tck=$(getconf CLK_TCK 2> /dev/null || echo 100)
stop_node() {
  local pid=${node_pid[$1]} stat
  stopped_hwm=$(proc_kib "$pid" VmHWM)
  stopped_rss=$(proc_kib "$pid" VmRSS)
  stopped_cpu="?"
  # Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the
  # ")" that ends the command name.
  stat=$(cat "/proc/$pid/stat" 2> /dev/null || true)
  stat=${stat##*) }
  if [ -n "$stat" ]; then stopped_cpu=$(awk -v t="$clk_tck" '{ printf "%.2f", ($12 + $13) / t }' <<< "$stat"); fi
  kill -TERM "$pid" 2> /dev/null || true
  # (bash reaps its exited children at once, so kill -0 fails as soon as
  # the node is gone; from a $(subshell) it would see a zombie instead.)
  for _ in $(seq 1 150); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  forget_pid "$pid"
}
max_kib() { # A B: the larger of two KiB counts, either of which may be "" or "?"
  if ! [[ $1 =~ ^[0-9]+$ ]]; then echo "$2"; elif ! [[ $2 =~ ^[0-9]+$ ]] || (($1 >= $2)); then echo "$1"; else echo "$2"; fi
}
# node_info NODE: sets info_id (the node id) and info_addr (its QUIC
# address on the node's listen IP, else the port of its first address).
info_id="" info_addr=""
node_info() {
  local n=$1 info ip=${node_ip[$1]}
  info=$(hdp_cli "$n" info --json) || die "hdp info (node $n) failed"
  info_id=$(jq -r '.id' <<< "$info") || die "hdp info (node $n): unexpected JSON: $info"
  [[ $info_id =~ ^[a-z2-7A-Z]{52}$ ]] || die "hdp info: unexpected id '$info_id'"
  info_addr=$(jq -r --arg ip "$ip:" '(.listen_addrs // []) as $a
    | [$a[] | select(startswith($ip))][0] // $a[0] // empty' <<< "$info") \
    || die "hdp info (node $n): unexpected JSON: $info"
  [ -n "$info_addr" ] || die "hdp info (node $n): no listen_addrs: $info"
  info_addr="$ip:${info_addr##*:}"
}
# wait_indexed NODE SHARENAME FILES [SECONDS]: until the share is scanned and
# holds exactly FILES files (at least 1 when FILES is "+").
shares_json=""
wait_indexed() {
  local n=$1 name=$2 want=$3 secs=${4:-60} t_end
  t_end=$(calc "$(now) + $secs")
  while :; do
    shares_json=$(hdp_cli "$n" shares --json) || die "hdp shares (node $n) failed"
    if [ "$want" = + ]; then
      jq -e --arg n "$name" 'any(.[]; .name == $n and .scanning == false and .files >= 1)' \
        <<< "$shares_json" > /dev/null && return 0
    else
      jq -e --arg n "$name" --argjson f "$want" 'any(.[]; .name == $n and .scanning == false and .files == $f)' \
        <<< "$shares_json" > /dev/null && return 0
    fi
    [ "$(calc "$(now) > $t_end")" = 0 ] || die "node $n did not finish indexing $name ($want files) in $secs s: $shares_json"
    sleep 0.1
  done
}
# connect_node B A: B dials A (node_info A first: uses info_id, info_addr)
# and waits until B sees A connected.
connect_node() {
  local b=$1 a=$2 json
  log "hdp: node $b connects to node $a at $info_addr"
  hdp_cli "$b" connect "$info_addr" > /dev/null || { cat "${node_dir[$b]}/log" >&2; die "hdp connect failed"; }
  for _ in $(seq 1 300); do
    json=$(hdp_cli "$b" peers --json) || die "hdp peers (node $b) failed"
    if jq -e --arg id "$info_id" 'any(.[]; .id == $id and .connected == true)' <<< "$json" > /dev/null; then
      return 0
    fi
    sleep 0.1
  done
  cat "${node_dir[$b]}/log" >&2
  die "node $b did not see node $a connected within 30 s: $json"
}
# hdp_download NODE TARGET SECONDS: `hdp download TARGET --wait` on NODE.
hdp_download() {
  local n=$1
  tmo_ns "$3" "${node_ns[$n]}" "$hdp" download "$2" --wait \
    --http "${node_http[$n]}" --data-dir "${node_data[$n]}" > "${node_dir[$n]}/download.out" \
    || { cat "${node_dir[$n]}/download.out" "${node_dir[$n]}/log" >&2; die "hdp download $2 failed"; }
}
