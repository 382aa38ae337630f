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
# The nodes run with --mqtt off --stun off --no-portmap --no-mdns; the shared
# machinery (sshd, nodes, cleanup) is in scripts/bench-lib.sh.
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

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_unset_hdp_env

# --- tools -------------------------------------------------------------------
need=()
if want tcp; then need+=(socat:socat); fi
if want scp; then need+=(/usr/sbin/sshd:openssh-server scp:openssh-client ssh:openssh-client ssh-keygen:openssh-client); fi
if want hdp || want hdp-raw; then need+=(jq:jq); fi
bench_ensure_packages "${need[@]}" || die "run as root, or apt-get install them"
if want hdp || want hdp-raw; then bench_hdp_bin; fi

bench_init_work hdp-bench-transfer

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
  local t0 t1 dst="$recv/scp.bin"
  ssh_setup "$work/ssh"
  sshd_start "" 127.0.0.1
  warm
  log "scp: sending (cipher $ssh_cipher)"
  t0=$(now)
  timeout "$tmo" scp -q "${ssh_opts[@]}" -P "$sshd_port" "$src" "$ssh_user@127.0.0.1:$dst" \
    || { cat "$ssh_dir/sshd.log" >&2; die "scp failed"; }
  t1=$(now)
  sshd_stop
  record scp "$t0" "$t1"
  scp_cipher=$ssh_cipher
  verify_and_drop "$dst" scp
}

# --- (c) two harddrive-party nodes --------------------------------------------
hwm_a="" hwm_b="" # peak RSS in KiB of each node, the largest over the runs
cpu_a="" cpu_b="" # CPU seconds of each node in the last run

run_hdp() { # [METHOD: hdp (default) or hdp-raw]
  local method=${1:-hdp} demux=on share_name dl t0 t1
  if [ "$method" = hdp-raw ]; then demux=off; fi
  share_name=$(basename "$share")
  mkdir -p "$work/b-share"
  start_node a "$share" "HDP_SOCKET_DEMUX=$demux"        # the sender: shares the test file
  start_node b "$work/b-share" "HDP_SOCKET_DEMUX=$demux" # the receiver: shares an empty directory
  log "hdp: node a on http://${node_http[a]}, node b on http://${node_http[b]}"
  node_info a
  # node a must have indexed its share (the file must be known to serve it).
  wait_indexed a "$share_name" + 60
  connect_node b a

  warm
  log "hdp: node b downloads $info_id/$share_name/$fname"
  t0=$(now)
  hdp_download b "$info_id/$share_name/$fname" "$tmo"
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
