#!/usr/bin/env bash
# Transfer benchmark: moves one file of random data (1 GiB by default) over
# loopback three ways in the same run and reports the throughput of each:
#   tcp  plain TCP with socat (-b 1 MiB), the ceiling;
#   scp  scp to a throwaway sshd on 127.0.0.1 (fastest available cipher,
#        aes128-gcm@openssh.com when the client offers it), the yardstick;
#   hdp  harddrive-party: two release `hdp` nodes on 127.0.0.1, the second
#        one downloads the file from the first one's share.
# and, when asked for (BENCH_METHODS), a fourth:
#   hdp-raw  the same nodes with HDP_SOCKET_DEMUX=off: quinn gets its UDP
#        socket without the wrapper that takes STUN answers and punch probes
#        out (node/src/net/socket.rs). `hdp` against `hdp-raw` in one run is
#        the A/B that shows what the wrapper costs.
# Prints a table (seconds, MiB/s, ratio vs scp, ratio vs TCP) and each hdp
# node's peak RSS (VmHWM) and CPU time (user + system, over the node's whole
# life: start, indexing, the transfer), both read just before it is stopped
# with SIGTERM.
# Every received file is compared byte for byte with the source (cmp); a
# mismatch fails the script. The source's page cache is warmed before each
# method and the previous method's output is deleted first.
#
#   scripts/bench-transfer.sh [SIZE]     # SIZE as for `head -c`: 1G (default), 256M, ...
#
# Environment:
#   BENCH_SIZE=256M           the same as the SIZE argument (the argument wins)
#   BENCH_METHODS="tcp scp"   run only some methods (default "tcp scp hdp";
#                             "hdp hdp-raw" is the socket-wrapper A/B)
#   BENCH_TIMEOUT=600         seconds allowed for each transfer
#   BENCH_RUNS=3              repeat the methods (interleaved) and keep each one's
#                             best time; default 1. Loopback figures on a busy
#                             machine vary a lot from run to run.
#   BENCH_SSH_CIPHER=...      force an ssh cipher (see `ssh -Q cipher`)
#   BENCH_HDP_BIN=path        use this hdp binary instead of building one
#   CARGO_TARGET_DIR          where the release build goes (default ~/.cache/hdp-target)
#
# Installs socat, openssh-server, openssh-client (and jq, to read hdp's JSON)
# with apt-get when missing (needs root). Uses only 127.0.0.1; works in a
# temporary directory under /tmp (the file needs about twice SIZE of disk),
# and kills everything it started and removes that directory at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # awk prints "1.5"; printf must read it the same way

size=${1:-${BENCH_SIZE:-1G}}
methods=${BENCH_METHODS:-tcp scp hdp}
tmo=${BENCH_TIMEOUT:-600}
runs=${BENCH_RUNS:-1}
if ! [[ $size =~ ^[0-9]+[KMG]?$ ]]; then
  echo "usage: $0 [SIZE]   (SIZE like 1G, 256M, 1048576)" >&2
  exit 2
fi
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS must be a positive integer" >&2; exit 2; }
for m in $methods; do
  case $m in tcp | scp | hdp | hdp-raw) ;; *) echo "unknown method '$m' in BENCH_METHODS" >&2; exit 2 ;; esac
done
want() { [[ " $methods " == *" $1 "* ]]; }

# The node's own HDP_* variables (an HDP_SHARE or HDP_TOKEN from the caller's
# shell) would change what the nodes and the client commands do.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^HDP_' || true)

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }

# --- tools -------------------------------------------------------------------
missing=()
if want tcp; then command -v socat > /dev/null || missing+=(socat); fi
if want scp; then
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  { command -v scp && command -v ssh && command -v ssh-keygen; } > /dev/null || missing+=(openssh-client)
fi
if want hdp; then command -v jq > /dev/null || missing+=(jq); fi
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root, or apt-get install them)"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

hdp=""
if want hdp; then
  if [ -n "${BENCH_HDP_BIN:-}" ]; then
    hdp=$BENCH_HDP_BIN
  else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
    cargo build --release --locked -p hdp-node --bin hdp >&2
    hdp="$CARGO_TARGET_DIR/release/hdp"
  fi
  [ -x "$hdp" ] || die "no hdp binary at $hdp"
fi

# --- temp dir, background processes, cleanup ----------------------------------
work=$(mktemp -d /tmp/hdp-bench-transfer.XXXXXX)
bg_pids=()
made_privsep=""
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=""
    for p in "${bg_pids[@]}"; do kill -0 "$p" 2> /dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in "${bg_pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  rm -rf "$work"
  if [ -n "$made_privsep" ]; then rmdir /run/sshd 2> /dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
forget_pid() { # drop a stopped process from the cleanup list
  local p keep=()
  for p in "${bg_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  bg_pids=("${keep[@]}")
}

# --- loopback ports (read from /proc/net/tcp; no ss or netstat needed) --------
port_in_use() { grep -qi "$(printf ':%04X ' "$1")" /proc/net/tcp /proc/net/tcp6 2> /dev/null; }
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}
wait_listen() { # PORT PID WHAT: wait until PID listens on 127.0.0.1:PORT
  local pat
  pat=$(printf '0100007F:%04X 00000000:0000 0A' "$1")
  for _ in $(seq 1 100); do
    grep -q "$pat" /proc/net/tcp && return 0
    kill -0 "$2" 2> /dev/null || { echo "bench: $3 exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "bench: $3 is not listening on 127.0.0.1:$1 after 10 s" >&2
  return 1
}

# --- the test file ----------------------------------------------------------
share="$work/bench-share"
fname=payload.bin
src="$share/$fname"
recv="$work/recv"
mkdir -p "$share" "$recv"
log "writing $size of random data to $src"
head -c "$size" /dev/urandom > "$src"
sync # its writeback would otherwise slow down the first method
bytes=$(stat -c %s "$src")
[ "$bytes" -gt 0 ] || die "empty test file"
mib=$(calc "$bytes / 1048576")

warm() { cat "$src" > /dev/null; }
# Checks a received file and removes it; its dirty pages are flushed (sync)
# outside the timing so they do not slow down the next method.
verify_and_drop() { # FILE METHOD
  [ -f "$1" ] || die "$2: no output file $1"
  cmp "$src" "$1" || die "$2: the received file differs from the source"
  rm -f "$1"
  sync
  log "$2: received file is identical to the source"
}

declare -A secs=() # best (smallest) time of each method over the runs
record() { # METHOD T0 T1
  local t
  t=$(calc "$3 - $2")
  log "$1: $(printf '%.3f' "$t") s"
  if [ -z "${secs[$1]:-}" ] || [ "$(calc "$t < ${secs[$1]}")" = 1 ]; then secs[$1]=$t; fi
}

# --- (a) plain TCP with socat -------------------------------------------------
run_tcp() {
  local port rpid t0 t1 dst="$recv/tcp.bin"
  port=$(free_port) || die "no free port"
  timeout "$tmo" socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "CREATE:$dst" \
    2> "$work/socat.log" &
  rpid=$!
  bg_pids+=("$rpid")
  wait_listen "$port" "$rpid" "socat" || { cat "$work/socat.log" >&2; exit 1; }
  warm
  log "tcp: sending"
  t0=$(now)
  timeout "$tmo" socat -u -b 1048576 "OPEN:$src,rdonly" "TCP:127.0.0.1:$port" \
    || die "tcp: socat sender failed"
  wait "$rpid" || { cat "$work/socat.log" >&2; die "tcp: socat receiver failed"; }
  t1=$(now)
  forget_pid "$rpid"
  record tcp "$t0" "$t1"
  verify_and_drop "$dst" tcp
}

# --- (b) scp to a throwaway sshd ---------------------------------------------
run_scp() {
  local d="$work/ssh" port spid cipher user t0 t1 dst="$recv/scp.bin" ciphers
  rm -rf "$d"
  mkdir -p "$d"
  chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$d/host_key"
  ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$d/client_key"
  cp "$d/client_key.pub" "$d/authorized_keys"
  chmod 600 "$d/authorized_keys"
  ciphers=$(ssh -Q cipher)
  if [ -n "${BENCH_SSH_CIPHER:-}" ]; then
    cipher=$BENCH_SSH_CIPHER
  elif [[ $'\n'$ciphers$'\n' == *$'\naes128-gcm@openssh.com\n'* ]]; then
    cipher=aes128-gcm@openssh.com
  else
    cipher=chacha20-poly1305@openssh.com
  fi
  user=$(id -un)
  port=$(free_port) || die "no free port"
  cat > "$d/sshd_config" << EOF
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Ciphers $cipher
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
  /usr/sbin/sshd -D -e -f "$d/sshd_config" 2> "$d/sshd.log" &
  spid=$!
  bg_pids+=("$spid")
  wait_listen "$port" "$spid" "sshd" || { cat "$d/sshd.log" >&2; exit 1; }
  local opts=(-F /dev/null -i "$d/client_key" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout=10 -o Compression=no -c "$cipher")
  # Check the login once outside the timing, so a setup problem shows as one.
  timeout 30 ssh "${opts[@]}" -p "$port" "$user@127.0.0.1" true \
    || { cat "$d/sshd.log" >&2; die "scp: cannot log in to the throwaway sshd"; }
  warm
  log "scp: sending (cipher $cipher)"
  t0=$(now)
  timeout "$tmo" scp -q "${opts[@]}" -P "$port" "$src" "$user@127.0.0.1:$dst" \
    || { cat "$d/sshd.log" >&2; die "scp failed"; }
  t1=$(now)
  kill -TERM "$spid" 2> /dev/null || true
  wait "$spid" 2> /dev/null || true
  forget_pid "$spid"
  record scp "$t0" "$t1"
  scp_cipher=$cipher
  verify_and_drop "$dst" scp
}

# --- (c) two harddrive-party nodes --------------------------------------------
declare -A node_pid=() node_http=() node_data=() node_dl=()
hwm_a="" hwm_b="" # peak RSS in KiB of each node, the largest over the runs
cpu_a="" cpu_b="" # CPU seconds of each node in the last run
max_kib() { # A B: the larger of two KiB counts, either of which may be "" or "?"
  if ! [[ $1 =~ ^[0-9]+$ ]]; then echo "$2"; elif ! [[ $2 =~ ^[0-9]+$ ]] || (($1 >= $2)); then echo "$1"; else echo "$2"; fi
}

start_node() { # NAME SHAREDIR [DEMUX]
  local n=$1 dir="$work/node-$1" pid url help extra=() demux=${3:-on}
  rm -rf "$dir" # fresh identity, index and download dir on every run
  mkdir -p "$dir/dl"
  help=$("$hdp" start --help 2>&1 || true)
  # Optional flags, passed only when this build has them (--mqtt exactly,
  # not some --mqtt-foo).
  local flag_end='([^-[:alnum:]]|$)'
  if [[ $help =~ --no-mdns$flag_end ]]; then extra+=(--no-mdns); fi
  if [[ $help =~ --mqtt$flag_end ]]; then extra+=(--mqtt off); fi
  HDP_SOCKET_DEMUX=$demux "$hdp" start --data-dir "$dir/data" --http 127.0.0.1:0 --listen 127.0.0.1:0 \
    --topic bench --share "$2" --download-dir "$dir/dl" "${extra[@]}" > "$dir/out" 2> "$dir/log" &
  pid=$!
  bg_pids+=("$pid")
  url=""
  for _ in $(seq 1 600); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/#token=' "$dir/out" 2> /dev/null | head -n 1 || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2> /dev/null || { cat "$dir/log" >&2; die "hdp node $n exited at start"; }
    sleep 0.1
  done
  [ -n "$url" ] || { cat "$dir/log" >&2; die "hdp node $n printed no http://127.0.0.1:PORT/#token= line in 60 s"; }
  url=${url#http://}
  node_pid[$n]=$pid
  node_http[$n]=${url%%/*}
  node_data[$n]="$dir/data"
  node_dl[$n]="$dir/dl"
}
# hdp_cli NODE CMD ARGS...: run a client command against NODE, bounded in time.
hdp_cli() {
  local n=$1
  shift
  timeout 60 "$hdp" "$@" --http "${node_http[$n]}" --data-dir "${node_data[$n]}"
}
# stop_node NODE: reads its VmHWM (KiB) into stopped_hwm, then stops it with
# SIGTERM (SIGKILL after 15 s). Not in a subshell: only this shell can reap it.
stopped_hwm="" stopped_cpu=""
clk_tck=$(getconf CLK_TCK 2> /dev/null || echo 100)
stop_node() {
  local pid=${node_pid[$1]} status stat
  stopped_hwm="?"
  stopped_cpu="?"
  status=$(cat "/proc/$pid/status" 2> /dev/null || true)
  if [[ $status =~ VmHWM:[[:space:]]*([0-9]+) ]]; then stopped_hwm=${BASH_REMATCH[1]}; fi
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

run_hdp() { # [METHOD: hdp (default) or hdp-raw]
  local method=${1:-hdp} demux=on info a_id a_addr share_name json dl t0 t1 ok
  if [ "$method" = hdp-raw ]; then demux=off; fi
  share_name=$(basename "$share")
  mkdir -p "$work/b-share"
  start_node a "$share" "$demux"        # the sender: shares the test file
  start_node b "$work/b-share" "$demux" # the receiver: shares an empty directory
  log "hdp: node a on http://${node_http[a]}, node b on http://${node_http[b]}"

  info=$(hdp_cli a info --json) || die "hdp info (node a) failed"
  a_id=$(jq -r '.id' <<< "$info") || die "hdp info (node a): unexpected JSON: $info"
  [[ $a_id =~ ^[a-z2-7A-Z]{52}$ ]] || die "hdp info: unexpected id '$a_id'"
  # The QUIC address to dial: a 127.0.0.1 one, else the port of the first one.
  a_addr=$(jq -r '(.listen_addrs // []) as $a
    | [$a[] | select(startswith("127.0.0.1:"))][0] // $a[0] // empty' <<< "$info") \
    || die "hdp info (node a): unexpected JSON: $info"
  [ -n "$a_addr" ] || die "hdp info (node a): no listen_addrs: $info"
  a_addr="127.0.0.1:${a_addr##*:}"

  # Wait until node a has indexed its share (the file must be known to serve it).
  ok=""
  for _ in $(seq 1 600); do
    json=$(hdp_cli a shares --json) || die "hdp shares (node a) failed"
    if jq -e --arg n "$share_name" 'any(.[]; .name == $n and .scanning == false and .files >= 1)' \
      <<< "$json" > /dev/null; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || die "node a did not finish indexing its share in 60 s: $json"

  log "hdp: node b connects to node a at $a_addr"
  hdp_cli b connect "$a_addr" > /dev/null || { cat "$work/node-b/log" >&2; die "hdp connect failed"; }
  ok=""
  for _ in $(seq 1 300); do
    json=$(hdp_cli b peers --json) || die "hdp peers (node b) failed"
    if jq -e --arg id "$a_id" 'any(.[]; .id == $id and .connected == true)' <<< "$json" > /dev/null; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || { cat "$work/node-b/log" >&2; die "node b did not see node a connected within 30 s: $json"; }

  warm
  log "hdp: node b downloads $a_id/$share_name/$fname"
  t0=$(now)
  timeout "$tmo" "$hdp" download "$a_id/$share_name/$fname" --wait \
    --http "${node_http[b]}" --data-dir "${node_data[b]}" > "$work/download.out" \
    || { cat "$work/download.out" "$work/node-b/log" >&2; die "hdp download failed"; }
  t1=$(now)
  record "$method" "$t0" "$t1"

  stop_node a
  hwm_a=$(max_kib "$hwm_a" "$stopped_hwm")
  cpu_a=$stopped_cpu
  stop_node b
  hwm_b=$(max_kib "$hwm_b" "$stopped_hwm")
  cpu_b=$stopped_cpu
  dl=$(find "${node_dl[b]}" -type f -name "$fname" | head -n 1)
  [ -n "$dl" ] || die "hdp: no $fname below ${node_dl[b]}"
  verify_and_drop "$dl" "$method"
}

scp_cipher=""
# (`if`, not `want x && run_x`: errexit is off inside a function called on
# the left of &&.)
for ((run = 1; run <= runs; run++)); do
  [ "$runs" -eq 1 ] || log "run $run of $runs"
  if want tcp; then run_tcp; fi
  if want scp; then run_scp; fi
  if want hdp; then run_hdp hdp; fi
  if want hdp-raw; then run_hdp hdp-raw; fi
done

# --- report ------------------------------------------------------------------
rate() { calc "$mib / ${secs[$1]}"; }
ratio() { # METHOD BASE: throughput of METHOD / throughput of BASE
  if [ -n "${secs[$1]:-}" ] && [ -n "${secs[$2]:-}" ]; then
    printf '%.2f' "$(calc "${secs[$2]} / ${secs[$1]}")"
  else
    printf '%s' -
  fi
}
echo
printf 'file: %s bytes (%.0f MiB) of random data, loopback 127.0.0.1' "$bytes" "$mib"
if [ "$runs" -gt 1 ]; then printf ', best of %d runs\n' "$runs"; else printf '\n'; fi
printf '%-7s %9s %9s %9s %9s\n' method seconds 'MiB/s' 'vs scp' 'vs TCP'
for m in tcp scp hdp hdp-raw; do
  [ -n "${secs[$m]:-}" ] || continue
  printf '%-7s %9.3f %9.1f %9s %9s\n' "$m" "${secs[$m]}" "$(rate "$m")" "$(ratio "$m" scp)" "$(ratio "$m" tcp)"
done
if [ -n "${secs[hdp]:-}" ] && [ -n "${secs[hdp-raw]:-}" ]; then
  printf 'socket wrapper A/B: hdp / hdp-raw throughput = %s\n' "$(ratio hdp hdp-raw)"
fi
if [ -n "$scp_cipher" ]; then printf 'scp cipher: %s\n' "$scp_cipher"; fi
if want hdp || want hdp-raw; then
  for pair in "a (sender):$hwm_a:$cpu_a" "b (receiver):$hwm_b:$cpu_b"; do
    IFS=: read -r who kib cpu <<< "$pair"
    if [[ $kib =~ ^[0-9]+$ ]]; then
      printf 'hdp node %-13s peak RSS %8.1f MiB' "$who" "$(calc "$kib / 1024")"
    else
      printf 'hdp node %-13s peak RSS        ? (VmHWM unreadable)' "$who"
    fi
    printf '   CPU %s s (last run)\n' "${cpu:-?}"
  done
fi
