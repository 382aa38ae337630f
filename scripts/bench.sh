#!/usr/bin/env bash
# Benchmark suite: harddrive-party (`hdp`) against the usual tools, on
# loopback and on an emulated WAN link, and writes docs/PERFORMANCE.md with a
# chart (docs/performance.png).
#
#   scripts/bench.sh [--smoke] [SCENARIO...]      (default: all scenarios)
#
# Scenarios:
#   big         one BENCH_BIG_SIZE file of random data over 127.0.0.1:
#               socat (plain TCP, the ceiling), scp, rsync -a over ssh, hdp;
#               MiB/s and both nodes' peak RSS (VmHWM)
#   small       BENCH_SMALL_FILES files of 4 KiB in 100 folders over 127.0.0.1:
#               rsync -a over ssh, scp -r, hdp (the whole share); files/s
#   link        one BENCH_LINK_SIZE file over a shaped link between namespaces
#               hdp-sa (10.231.77.1) and hdp-sb (10.231.77.2): 25 ms each way,
#               100 Mbit/s, 0.1 % loss each way: iperf3, scp, hdp. The link
#               is scripts/linkemu/shaped-link.sh (a TUN pair joined by
#               linkemu.c, built with gcc), for kernels without tc netem
#   harsh       the same with 75 ms each way, 20 Mbit/s, 1 % loss each way and
#               BENCH_HARSH_SIZE: iperf3, hdp
#   link-small  BENCH_LINK_SMALL_FILES x 4 KiB in 100 folders on the `link`
#               profile: iperf3, rsync -a over ssh, hdp
#   index       BENCH_INDEX_FILES empty files in 1000 folders: `find DIR -type f
#               | wc -l` against one node indexing them (start -> `hdp shares`
#               shows the scan done); files/s and the node's VmRSS and VmHWM
#   rss         idle RSS of a node after BENCH_RSS_IDLE s: (a) --mqtt off
#               --no-mdns; (b) MQTT through a local mosquitto and mDNS on, both
#               in a namespace hdp-bench-rss with only `lo`
# Syncthing joins big, small and link as one more method when it is
# installed (see BENCH_SYNCTHING).
# Every method runs BENCH_RUNS times, interleaved (A B C A B C); the report
# gives the median, min and max time of each and the ratios of the medians.
# Every transfer is checked byte for byte (cmp, diff -r): a mismatch or a
# failing method stops the script with a non-zero status.
#
#   --smoke   every scenario at a tiny size (big 8M, small 200 files, link and
#             harsh 2M, link-small 100 files, index 2000 files, rss 3 s idle),
#             one run; the markdown goes to the results dir, never docs/. The
#             shaped-link scenarios print "skip" where namespaces or
#             /dev/net/tun are not usable (not root). For CI: about a minute.
#
# Environment (defaults in brackets; --smoke overrides the sizes and runs):
#   BENCH_RUNS [3]               runs per method
#   BENCH_BIG_SIZE [1G]          size of `big` (as for head -c: 1G, 256M, ...)
#   BENCH_SMALL_FILES [10000]    files in `small`
#   BENCH_LINK_SIZE [128M]       size of `link`
#   BENCH_HARSH_SIZE [32M]       size of `harsh`
#   BENCH_LINK_SMALL_FILES [10000]  files in `link-small`
#   BENCH_INDEX_FILES [1000000]  files in `index`
#   BENCH_RSS_IDLE [15]          seconds a node idles before `rss` reads it
#   BENCH_IPERF_SECS [15]        length of each iperf3 run (iperf3 measures a
#                                rate for a fixed time; the report converts it
#                                to the time the scenario's bytes would take)
#   BENCH_TIMEOUT [1200]         seconds allowed for each transfer / indexing
#   BENCH_VARIANTS []            extra hdp methods, to A/B node settings:
#                                "NAME:VAR=VALUE VAR=VALUE; NAME2:VAR=VALUE"
#                                adds hdp-NAME, hdp-NAME2, whose nodes (both)
#                                run with those variables. Variants are
#                                separated by `;` (or by a new NAME: word);
#                                values cannot hold spaces. E.g.
#                                BENCH_VARIANTS="t2:HDP_THREADS=2; raw:HDP_SOCKET_DEMUX=off";
#                                HDP_BENCH_BIN=PATH runs the variant from
#                                another hdp binary (A/B of a code change)
#   BENCH_SYNCTHING [auto]       1: add Syncthing to big, small and link
#                                (apt-get installs it); 0: leave it out; auto:
#                                only when `syncthing` is installed
#   BENCH_STTRACE                STTRACE for the syncthing instances (debug)
#   BENCH_OUT [docs/PERFORMANCE.md]  where the markdown goes; the chart goes
#                                beside it as performance.png
#   BENCH_HDP_BIN                use this hdp binary instead of building one
#                                with cargo build --profile dist (what the
#                                packages ship: smaller, so less RSS)
#   BENCH_SSH_CIPHER             force the ssh cipher (default aes128-gcm)
#   BENCH_KEEP_WORK=1            keep the temp dir with the data and the logs
# The results (results.tsv, memory.tsv, the markdown of a --smoke run) stay in
# a directory /tmp/hdp-bench-results.XXXXXX that is printed at the end.
#
# Needs root for the shaped link, the namespaces and dropping the page cache;
# as root it apt-get installs what is missing (openssh-server openssh-client
# rsync socat iperf3 jq mosquitto gnuplot-nox python3 gcc). The nodes run with
# --mqtt off --stun off --no-portmap --no-mdns, except in rss (b), inside its
# own namespace. Uses only 127.0.0.1 and the namespaces it makes; everything
# it starts is stopped and its namespaces deleted at exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # awk prints "1.5"; printf must read it the same way
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_unset_hdp_env

all_scenarios=(big small link harsh link-small index rss)
usage() { sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# --- arguments and settings -----------------------------------------------------
smoke="" scenarios=()
for a in "$@"; do
  case $a in
    --smoke) smoke=1 ;;
    -h | --help) usage; exit 0 ;;
    big | small | link | harsh | link-small | index | rss)
      [[ " ${scenarios[*]} " == *" $a "* ]] || scenarios+=("$a") ;;
    *) echo "unknown argument '$a' (see $0 --help)" >&2; exit 2 ;;
  esac
done
explicit="" # scenarios named on the command line must run (no silent skip)
if [ ${#scenarios[@]} -gt 0 ]; then explicit=1; else scenarios=("${all_scenarios[@]}"); fi
wants() { [[ " ${scenarios[*]} " == *" $1 "* ]]; }

if [ -n "$smoke" ]; then
  runs=1 big_size=8M small_files=200 link_size=2M harsh_size=2M link_small_files=100
  index_files=2000 rss_idle=3 iperf_secs=1
else
  runs=${BENCH_RUNS:-3}
  big_size=${BENCH_BIG_SIZE:-1G}
  small_files=${BENCH_SMALL_FILES:-10000}
  link_size=${BENCH_LINK_SIZE:-128M}
  harsh_size=${BENCH_HARSH_SIZE:-32M}
  link_small_files=${BENCH_LINK_SMALL_FILES:-10000}
  index_files=${BENCH_INDEX_FILES:-1000000}
  rss_idle=${BENCH_RSS_IDLE:-15}
  iperf_secs=${BENCH_IPERF_SECS:-15}
fi
tmo=${BENCH_TIMEOUT:-1200}
for v in runs small_files link_small_files index_files rss_idle iperf_secs tmo; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer, not '${!v}'" >&2; exit 2; }
done
for v in big_size link_size harsh_size; do
  [[ ${!v} =~ ^[1-9][0-9]*[KMG]?$ ]] || { echo "$v must be a size like 1G, 256M, 1048576, not '${!v}'" >&2; exit 2; }
done

# BENCH_VARIANTS: words NAME:[VAR=VALUE] start a variant, VAR=VALUE words add
# to the current one; `;` separates like a space.
variant_names=()
declare -A variant_env=()
read -ra words <<< "${BENCH_VARIANTS:-}"
words=("${words[@]//;/ }")
read -ra words <<< "${words[*]:-}"
cur=""
for w in "${words[@]}"; do
  if [[ $w =~ ^([A-Za-z0-9_.-]+):(.*)$ ]]; then
    cur=${BASH_REMATCH[1]}
    [ -z "${variant_env[$cur]+x}" ] || { echo "BENCH_VARIANTS: variant '$cur' given twice" >&2; exit 2; }
    variant_names+=("$cur")
    variant_env[$cur]=""
    w=${BASH_REMATCH[2]}
    [ -n "$w" ] || continue
  fi
  [ -n "$cur" ] || { echo "BENCH_VARIANTS: '$w' before any NAME:" >&2; exit 2; }
  [[ $w =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "BENCH_VARIANTS: '$w' is not VAR=VALUE" >&2; exit 2; }
  variant_env[$cur]="${variant_env[$cur]} $w"
done
hdp_methods=(hdp)
for v in "${variant_names[@]}"; do hdp_methods+=("hdp-$v"); done

# --- tools ------------------------------------------------------------------------
is_root="" link_ok="" link_why=""
[ "$(id -u)" -eq 0 ] && is_root=1
ssh_pkgs=(/usr/sbin/sshd:openssh-server scp:openssh-client ssh:openssh-client ssh-keygen:openssh-client)
need=(jq:jq python3:python3 awk:mawk)
if wants big; then need+=(socat:socat rsync:rsync "${ssh_pkgs[@]}"); fi
if wants small; then need+=(rsync:rsync "${ssh_pkgs[@]}"); fi
if wants link || wants harsh || wants link-small; then
  need+=(iperf3:iperf3 ip:iproute2 gcc:gcc /usr/include/stdio.h:libc6-dev /usr/include/linux/if_tun.h:linux-libc-dev)
fi
if wants link; then need+=("${ssh_pkgs[@]}"); fi
if wants link-small; then need+=(rsync:rsync "${ssh_pkgs[@]}"); fi
if wants rss; then need+=(mosquitto:mosquitto ip:iproute2); fi
need+=(gnuplot:gnuplot-nox) # (the chart, made in --smoke too)
case ${BENCH_SYNCTHING:-auto} in
  1) need+=(syncthing:syncthing curl:curl) ;;
  0 | auto) ;;
  *) echo "BENCH_SYNCTHING must be 1, 0 or auto" >&2; exit 2 ;;
esac
if ! bench_ensure_packages "${need[@]}"; then
  [ -n "$smoke" ] || die "run as root, or apt-get install the packages above"
  log "smoke: going on; methods whose tools are missing are skipped"
fi
command -v jq > /dev/null || die "jq is needed to read hdp's JSON"
command -v python3 > /dev/null || die "python3 is needed to make the test trees"
with_syncthing=""
if [ "${BENCH_SYNCTHING:-auto}" != 0 ] && command -v syncthing > /dev/null && command -v curl > /dev/null; then
  with_syncthing=1
fi

netns_ok=""
if [ -n "$is_root" ] && command -v ip > /dev/null && ip netns add "hdp-bench-probe-$$" 2> /dev/null; then
  ip netns del "hdp-bench-probe-$$" || true
  netns_ok=1
fi
if [ -z "$is_root" ]; then
  link_why="not root"
elif [ -z "$netns_ok" ]; then
  link_why="\`ip netns add\` does not work here"
elif [ ! -c /dev/net/tun ]; then
  link_why="no /dev/net/tun"
elif ! command -v gcc > /dev/null; then
  link_why="no gcc to build linkemu"
else
  link_ok=1
fi
# have METHOD: whether the tools of a baseline method are installed.
have() {
  case $1 in
    socat) command -v socat > /dev/null ;;
    scp) [ -x /usr/sbin/sshd ] && command -v scp > /dev/null && command -v ssh-keygen > /dev/null ;;
    rsync) [ -x /usr/sbin/sshd ] && command -v rsync > /dev/null && command -v ssh-keygen > /dev/null ;;
    iperf3) command -v iperf3 > /dev/null ;;
    syncthing) [ -n "$with_syncthing" ] ;;
    *) return 0 ;;
  esac
}

bench_hdp_bin dist
bench_init_work hdp-bench
results=$(mktemp -d /tmp/hdp-bench-results.XXXXXX)
printf 'scenario\tmethod\trun\tseconds\tbytes\tfiles\n' > "$results/results.tsv"
printf 'scenario\tmethod\trun\tnode\tvmrss_kib\tvmhwm_kib\n' > "$results/memory.tsv"
: > "$results/notes.tsv"
log "results in $results"

# --- recording ----------------------------------------------------------------------
declare -A sc_methods=() sc_bases=() sc_title=() sc_desc=() sc_unit=()
scen_ran=() scen_skipped=()
record() { # SCENARIO METHOD RUN SECONDS BYTES FILES
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$results/results.tsv"
  log "$1 $2 run $3: $(printf '%.3f' "$4") s"
}
record_mem() { # SCENARIO METHOD RUN NODE VMRSS_KIB VMHWM_KIB
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$results/memory.tsv"
}
note() { printf '%s\t%s\n' "$1" "$2" >> "$results/notes.tsv"; } # SCENARIO TEXT
skip() { # SCENARIO REASON
  echo "skip: $1 ($2)"
  scen_skipped+=("$1: $2")
}
human() { # BYTES -> "1.0 GiB", "128 MiB", "4 KiB"
  awk -v b="$1" 'BEGIN { u = "B"; split("KiB MiB GiB TiB", us, " ");
    for (i = 1; b >= 1024 && i <= 4; i++) { b /= 1024; u = us[i] }
    if (b == int(b)) printf "%d %s", b, u; else printf "%.1f %s", b, u }'
}

# --- test data ------------------------------------------------------------------------
# make_tree DIR FILES FOLDERS SIZE: FILES files of SIZE random bytes (0: empty)
# spread over FOLDERS folders (no more folders than files).
make_tree() {
  python3 - "$@" << 'EOF'
import os, sys
root, n, ndirs, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ndirs = max(1, min(ndirs, n))
dirs = [os.path.join(root, "d%04d" % i) for i in range(ndirs)]
for d in dirs:
    os.makedirs(d, exist_ok=True)
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
for i in range(n):
    fd = os.open(os.path.join(dirs[i % ndirs], "f%07d.bin" % i), flags, 0o644)
    if size:
        os.write(fd, os.urandom(size))
    os.close(fd)
EOF
}

# The scenario being run: where the data comes from and goes to.
sc="" src_ns="" dst_ns="" src_ip=127.0.0.1 dst_ip=127.0.0.1
src="" kind=file payload_bytes=0 payload_files=0 share_dir="" share_name="" recv=""
set_loopback() { src_ns="" dst_ns="" src_ip=127.0.0.1 dst_ip=127.0.0.1; }
set_shaped() { src_ns=hdp-sa dst_ns=hdp-sb src_ip=10.231.77.1 dst_ip=10.231.77.2; }
# file_payload SIZE: one file of random data, shared as $share_name/payload.bin.
file_payload() {
  share_dir="$work/$sc-share" share_name="$sc-share"
  mkdir -p "$share_dir"
  src="$share_dir/payload.bin" kind=file
  log "$sc: writing $1 of random data"
  head -c "$1" /dev/urandom > "$src"
  payload_bytes=$(stat -c %s "$src") payload_files=1
  sync # its writeback would otherwise slow down the first method
}
# tree_payload FILES: FILES files of 4 KiB random data in 100 folders, the share itself.
tree_payload() {
  share_dir="$work/$sc-tree" share_name="$sc-tree"
  src=$share_dir kind=tree
  log "$sc: writing $1 files of 4 KiB random data in 100 folders"
  make_tree "$src" "$1" 100 4096
  payload_bytes=$(($1 * 4096)) payload_files=$1
  sync
}
drop_payload() { rm -rf "$share_dir" "$work/recv" "$work/trash"; }
# discard PATH: a received tree goes out of the way (renamed), and is deleted
# only when the scenario ends (drop_payload). ext4 passes over inodes freed
# in the last 30 s when it allocates new ones, so deleting 10,000 files
# between two methods makes the next one's file creation several times
# slower: an artifact of back-to-back runs that no user sees. Files are
# deleted at once.
discard() {
  [ -e "$1" ] || return 0
  if [ "$kind" = tree ]; then
    mkdir -p "$work/trash"
    mv "$1" "$(mktemp -d "$work/trash/XXXXXX")/"
  else
    rm -rf "$1"
  fi
}
warm() { # the source in the page cache
  if [ "$kind" = file ]; then cat "$src" > /dev/null; else find "$src" -type f -print0 | xargs -0 cat > /dev/null; fi
}
fresh_recv() { # an empty $recv/METHOD; the previous output deleted and flushed
  recv="$work/recv/$1"
  discard "$work/recv"
  mkdir -p "$recv"
  sync
}
# verify METHOD PATH: PATH (a file, or a tree) equals the source, byte for byte.
verify() {
  if [ "$kind" = file ]; then
    [ -f "$2" ] || die "$sc $1: no output file $2"
    cmp "$src" "$2" || die "$sc $1: the received file differs from the source"
  else
    [ -d "$2" ] || die "$sc $1: no output folder $2"
    if ! diff -rq "$src" "$2" > "$work/diff.out" 2>&1; then
      head -n 20 "$work/diff.out" >&2
      die "$sc $1: the received tree differs from the source"
    fi
  fi
  discard "$work/recv"
  sync
  log "$sc $1: received data is identical to the source"
}

# --- methods ------------------------------------------------------------------------
# Each moves the payload from src (ns/ip) to dst, times it, records it, verifies it.
elapsed=""
timed() { elapsed=$(calc "$2 - $1"); } # T0 T1

m_socat() { # RUN (a file only)
  local port rpid t0 t1
  fresh_recv socat
  port=$(free_port) || die "no free port"
  ns_prefix "$dst_ns"
  "${nsx[@]}" timeout "$tmo" socat -u -b 1048576 "TCP-LISTEN:$port,bind=$dst_ip,reuseaddr" \
    "CREATE:$recv/payload.bin" 2> "$work/socat.log" &
  rpid=$!
  bg_pids+=("$rpid")
  wait_listen "$port" "$rpid" socat "$dst_ip" || { cat "$work/socat.log" >&2; die "socat receiver did not start"; }
  warm
  t0=$(now)
  tmo_ns "$tmo" "$src_ns" socat -u -b 1048576 "OPEN:$src,rdonly" "TCP:$dst_ip:$port" \
    || die "$sc socat: sender failed"
  wait "$rpid" || { cat "$work/socat.log" >&2; die "$sc socat: receiver failed"; }
  t1=$(now)
  forget_pid "$rpid"
  timed "$t0" "$t1"
  record "$sc" socat "$1" "$elapsed" "$payload_bytes" "$payload_files"
  verify socat "$recv/payload.bin"
}

# iperf3: TCP from src to dst for iperf_secs; the rate the receiver saw is
# recorded as the time the payload would take at that rate.
m_iperf3() { # RUN
  local port spid json bytes secs
  port=$(free_port) || die "no free port"
  ns_prefix "$dst_ns"
  "${nsx[@]}" iperf3 -s -1 -B "$dst_ip" -p "$port" > "$work/iperf3-server.log" 2>&1 &
  spid=$!
  bg_pids+=("$spid")
  wait_listen "$port" "$spid" iperf3 "$dst_ip" || { cat "$work/iperf3-server.log" >&2; die "iperf3 server did not start"; }
  json=$(tmo_ns $((iperf_secs + 60)) "$src_ns" iperf3 -c "$dst_ip" -p "$port" -t "$iperf_secs" -J) \
    || { echo "$json" | head -n 30 >&2; die "$sc iperf3: client failed"; }
  stop_pid "$spid"
  bytes=$(jq -r '.end.sum_received.bytes // 0' <<< "$json")
  secs=$(jq -r '.end.sum_received.seconds // 0' <<< "$json")
  [ "$(calc "$bytes > 0 && $secs > 0")" = 1 ] || die "$sc iperf3: no result: $(jq -c '.error // .end' <<< "$json")"
  log "$sc iperf3: $(calc "$bytes * 8 / $secs / 1e6") Mbit/s for ${secs} s"
  record "$sc" iperf3 "$1" "$(calc "$payload_bytes * $secs / $bytes")" "$payload_bytes" "$payload_files"
}

out_path() { # the copy of the payload below $recv (scp, rsync)
  if [ "$kind" = file ]; then echo "$recv/payload.bin"; else echo "$recv/$(basename "$src")"; fi
}
m_scp() { # RUN
  local t0 t1 r=()
  fresh_recv scp
  [ "$kind" = file ] || r=(-r)
  warm
  t0=$(now)
  tmo_ns "$tmo" "$src_ns" scp -q "${r[@]}" "${ssh_opts[@]}" -P "$sshd_port" "$src" "$ssh_user@$dst_ip:$recv/" \
    || { cat "$ssh_dir/sshd.log" >&2; die "$sc scp failed"; }
  t1=$(now)
  timed "$t0" "$t1"
  record "$sc" scp "$1" "$elapsed" "$payload_bytes" "$payload_files"
  verify scp "$(out_path)"
}
m_rsync() { # RUN
  local t0 t1
  fresh_recv rsync
  warm
  t0=$(now)
  tmo_ns "$tmo" "$src_ns" rsync -a -e "$(ssh_cmd)" "$src" "$ssh_user@$dst_ip:$recv/" \
    || { cat "$ssh_dir/sshd.log" >&2; die "$sc rsync failed"; }
  t1=$(now)
  timed "$t0" "$t1"
  record "$sc" rsync "$1" "$elapsed" "$payload_bytes" "$payload_files"
  verify rsync "$(out_path)"
}

variant_of() { # METHOD -> the VAR=VALUE words of its variant (hdp: none)
  if [ "$1" = hdp ]; then echo ""; else echo "${variant_env[${1#hdp-}]}"; fi
}
# m_hdp METHOD RUN: node a (src) shares the payload, node b (dst) downloads it.
m_hdp() {
  local method=$1 run=$2 envs t0 t1 target out
  read -ra envs <<< "$(variant_of "$method")"
  mkdir -p "$work/empty-share"
  start_node a "$share_dir" --ns "$src_ns" --ip "$src_ip" "${envs[@]}"
  start_node b "$work/empty-share" --ns "$dst_ns" --ip "$dst_ip" "${envs[@]}"
  node_info a
  wait_indexed a "$share_name" "$payload_files" "$tmo"
  connect_node b a
  fresh_recv "$method" # (unused by hdp; deletes the previous output)
  if [ "$kind" = file ]; then target="$info_id/$share_name/payload.bin"; else target="$info_id/$share_name"; fi
  warm
  log "$sc $method: node b downloads $target"
  t0=$(now)
  hdp_download b "$target" "$tmo"
  t1=$(now)
  timed "$t0" "$t1"
  record "$sc" "$method" "$run" "$elapsed" "$payload_bytes" "$payload_files"
  stop_node a
  record_mem "$sc" "$method" "$run" a "$stopped_rss" "$stopped_hwm"
  stop_node b
  record_mem "$sc" "$method" "$run" b "$stopped_rss" "$stopped_hwm"
  if [ "$kind" = file ]; then
    out=$(find "${node_dl[b]}" -type f -name payload.bin | head -n 1)
    [ -n "$out" ] || die "$sc $method: no payload.bin below ${node_dl[b]}"
  else
    out="${node_dl[b]}/$share_name"
  fi
  verify "$method" "$out"
  discard "${node_dl[b]}"
}

run_method() { # METHOD RUN
  case $1 in
    socat) m_socat "$2" ;;
    iperf3) m_iperf3 "$2" ;;
    scp) m_scp "$2" ;;
    rsync) m_rsync "$2" ;;
    syncthing) m_syncthing "$2" ;;
    hdp | hdp-*) m_hdp "$1" "$2" ;;
    *) die "unknown method $1" ;;
  esac
}
# run_methods: every method of $sc, BENCH_RUNS times, interleaved.
run_methods() {
  local run m
  for ((run = 1; run <= runs; run++)); do
    [ "$runs" -eq 1 ] || log "$sc: run $run of $runs"
    for m in ${sc_methods[$sc]}; do run_method "$m" "$run"; done
  done
}
# set_methods BASELINE... : the methods of $sc: the baselines whose tools are
# here (a missing one is skipped in --smoke only), then hdp and its variants.
set_methods() {
  local m ms="" bs=""
  for m in "$@"; do
    if have "$m"; then
      ms+="$m " bs+="$m "
    elif [ "$m" = syncthing ]; then
      :
    else
      [ -n "$smoke" ] || die "$sc: $m is not installed"
      echo "skip: $sc $m (not installed)"
    fi
  done
  sc_methods[$sc]="$ms${hdp_methods[*]}"
  sc_bases[$sc]=${bs% }
}
uses() { [[ " ${sc_methods[$sc]} " == *" $1 "* ]]; }
ssh_up() { # for scp / rsync: sshd in dst_ns, logged into from src_ns once
  if uses scp || uses rsync; then
    ssh_setup "$work/ssh"
    sshd_start "$dst_ns" "$dst_ip" "$src_ns"
    note "$sc" "ssh cipher: $ssh_cipher"
  fi
}

# --- the shaped link -------------------------------------------------------------------
shaped=scripts/linkemu/shaped-link.sh
link_is_up=""
netns_exists() { ip netns list | awk '{ print $1 }' | grep -qx "$1"; }
link_up() { # DELAY_MS_EACH_WAY RATE_MBIT LOSS_PPM_EACH_WAY
  local ns
  for ns in hdp-sa hdp-sb; do
    if netns_exists "$ns"; then
      die "network namespace $ns exists already (another run? \`$shaped down\` deletes it)"
    fi
  done
  link_is_up=1
  STATE="$work/linkemu" "$shaped" up "$@" >&2 || die "$shaped up $* failed"
}
link_down() {
  [ -n "$link_is_up" ] || return 0
  STATE="$work/linkemu" "$shaped" down > /dev/null 2>&1 || true
  link_is_up=""
}
cleanup_cmds+=(link_down)

# --- syncthing ---------------------------------------------------------------------------
# Two instances with fresh homes: a (src) shares the payload's folder sendonly
# with b (dst), which receives it receiveonly. Global and local discovery,
# relays, NAT traversal, STUN, usage reports and crash reports are off in
# config.xml before they first start (nothing leaves 127.0.0.1 or the
# namespaces); b is told a's tcp:// address and dials it. The devices and the
# folders are then configured through the REST API. The clock runs from b
# adding the folder (a has scanned it and the two are connected) until b's
# /rest/db/completion says 100 and /rest/db/status needs nothing and holds
# every file.
st_key="" st_id_a="" st_id_b=""
declare -A st_port=() st_pid=() st_ns=() st_listen=()
st_api() { # a|b METHOD PATH [JSON]
  local args=(-sS --fail --max-time 30 -H "X-API-Key: $st_key" -X "$2")
  if [ $# -ge 4 ]; then args+=(-H 'Content-Type: application/json' --data "$4"); fi
  tmo_ns 40 "${st_ns[$1]}" curl "${args[@]}" "http://127.0.0.1:${st_port[$1]}$3"
}
st_start() { # a|b NS IP
  local n=$1 home="$work/st-$1" listen_port
  rm -rf "$home"
  syncthing generate --home "$home" --no-default-folder --skip-port-probing > "$home.gen.log" 2>&1 \
    || { cat "$home.gen.log" >&2; die "syncthing generate failed"; }
  listen_port=$(free_port) || die "no free port"
  st_listen[$n]=$listen_port
  st_port[$n]=$(free_port) || die "no free port"
  st_ns[$n]=$2
  python3 - "$home/config.xml" "tcp://$3:$listen_port" << 'EOF2'
import sys, xml.etree.ElementTree as ET
path, listen = sys.argv[1], sys.argv[2]
tree = ET.parse(path)
root = tree.getroot()
for f in root.findall("folder"):
    root.remove(f)
opts = root.find("options")
def put(name, *values):
    for e in opts.findall(name):
        opts.remove(e)
    for v in values:
        ET.SubElement(opts, name).text = v
put("listenAddress", listen)
put("globalAnnounceEnabled", "false")
put("localAnnounceEnabled", "false")
put("relaysEnabled", "false")
put("natEnabled", "false")
put("stunKeepaliveStartS", "0")
put("stunKeepaliveMinS", "0")
put("urAccepted", "-1")
put("crashReportingEnabled", "false")
put("autoUpgradeIntervalH", "0")
put("startBrowser", "false")
put("setLowPriority", "false")
put("reconnectionIntervalS", "1")
tree.write(path)
EOF2
  ns_prefix "$2"
  # (STMONITORED: no monitor process, so $! is the syncthing that works.)
  "${nsx[@]}" env STNOUPGRADE=1 STMONITORED=yes STTRACE="${BENCH_STTRACE:-}" syncthing serve --home "$home" --no-browser --no-restart --logflags=0 \
    --gui-address "http://127.0.0.1:${st_port[$n]}" --gui-apikey "$st_key" > "$home.log" 2>&1 &
  st_pid[$n]=$!
  bg_pids+=("${st_pid[$n]}")
  for _ in $(seq 1 300); do
    st_api "$n" GET /rest/system/ping > /dev/null 2>&1 && break
    kill -0 "${st_pid[$n]}" 2> /dev/null || { cat "$home.log" >&2; die "syncthing $n exited at start"; }
    sleep 0.1
  done
  st_api "$n" GET /rest/system/ping > /dev/null || { cat "$home.log" >&2; die "syncthing $n: no REST API"; }
}
# st_wait a|b WHAT SECONDS JQ_FILTER PATH: poll PATH until JQ_FILTER is true.
st_wait() {
  local t_end json
  t_end=$(calc "$(now) + $3")
  while :; do
    json=$(st_api "$1" GET "$5" 2> /dev/null || true)
    if [ -n "$json" ] && jq -e "$4" <<< "$json" > /dev/null 2>&1; then return 0; fi
    if [ "$(calc "$(now) > $t_end")" = 1 ]; then
      cat "$work/st-$1.log" >&2
      die "$sc syncthing: $2 not reached in $3 s: $json"
    fi
    sleep 0.05
  done
}
st_note() {
  uses syncthing || return 0
  note "$sc" "syncthing: two instances with fresh homes, discovery and relays off, the receiver given the sender's tcp:// address; the clock runs from the receiver adding the folder (the sender has scanned it, the two are connected) until its /rest/db/completion is 100 and /rest/db/status needs nothing (polled every 50 ms). Its peak RSS is that of each instance."
}
m_syncthing() { # RUN
  local run=$1 t0 t1 folder dev
  st_key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  fresh_recv syncthing
  st_start a "$src_ns" "$src_ip"
  st_start b "$dst_ns" "$dst_ip"
  st_id_a=$(st_api a GET /rest/system/status | jq -r .myID)
  st_id_b=$(st_api b GET /rest/system/status | jq -r .myID)
  [[ $st_id_a =~ ^[A-Z0-9-]{50,}$ && $st_id_b =~ ^[A-Z0-9-]{50,}$ ]] || die "syncthing: bad device ids '$st_id_a' '$st_id_b'"
  # Only b dials (as hdp's node b does): a knows b without an address. When
  # both dial, from their listening ports (syncthing reuses them), the two
  # dials can meet as one TCP simultaneous open that both sides take for a
  # TLS client, and they retry in step for minutes.
  dev='{"deviceID": "%s", "name": "%s", "addresses": [%s]}'
  # shellcheck disable=SC2059 # the formats are the JSON templates above
  st_api a POST /rest/config/devices "$(printf "$dev" "$st_id_b" b '"dynamic"')" > /dev/null || die "syncthing a: adding device b failed"
  # shellcheck disable=SC2059
  st_api b POST /rest/config/devices "$(printf "$dev" "$st_id_a" a "\"tcp://$src_ip:${st_listen[a]}\"")" > /dev/null || die "syncthing b: adding device a failed"
  folder='{"id": "bench", "label": "bench", "path": "%s", "type": "%s", "devices": [{"deviceID": "%s"}], "fsWatcherEnabled": false, "rescanIntervalS": 3600}'
  # shellcheck disable=SC2059
  st_api a POST /rest/config/folders "$(printf "$folder" "$share_dir" sendonly "$st_id_b")" > /dev/null || die "syncthing a: adding the folder failed"
  st_wait a "the scan of the folder" "$tmo" ".state == \"idle\" and .localFiles == $payload_files" "/rest/db/status?folder=bench"
  st_wait b "the connection to a" 60 ".connections[\"$st_id_a\"].connected == true" /rest/system/connections
  warm
  log "$sc syncthing: b adds the folder"
  t0=$(now)
  # shellcheck disable=SC2059
  st_api b POST /rest/config/folders "$(printf "$folder" "$recv" receiveonly "$st_id_a")" > /dev/null || die "syncthing b: adding the folder failed"
  st_wait b "the folder in sync" "$tmo" \
    ".state == \"idle\" and .needBytes == 0 and .needFiles == 0 and .localFiles == $payload_files and .inSyncFiles == $payload_files" \
    "/rest/db/status?folder=bench"
  st_wait b "completion 100" 10 ".completion == 100" "/rest/db/completion?folder=bench"
  t1=$(now)
  timed "$t0" "$t1"
  record "$sc" syncthing "$run" "$elapsed" "$payload_bytes" "$payload_files"
  for n in a b; do
    record_mem "$sc" syncthing "$run" "$n" "$(proc_kib "${st_pid[$n]}" VmRSS)" "$(proc_kib "${st_pid[$n]}" VmHWM)"
    kill -TERM "${st_pid[$n]}" 2> /dev/null || true # both stop at once
  done
  stop_pid "${st_pid[a]}"
  stop_pid "${st_pid[b]}"
  rm -rf "$recv/.stfolder" "$share_dir/.stfolder"
  if [ "$kind" = file ]; then verify syncthing "$recv/payload.bin"; else verify syncthing "$recv"; fi
}

# --- scenarios -----------------------------------------------------------------------------
scen_big() {
  sc=big
  set_loopback
  file_payload "$big_size"
  sc_title[$sc]="big: one $(human "$payload_bytes") file over loopback"
  sc_desc[$sc]="One file of $(human "$payload_bytes") of random data over 127.0.0.1. socat is plain TCP (the ceiling); scp and rsync -a go through a throwaway sshd; hdp is two nodes on 127.0.0.1, the second downloading the file from the first one's share (the nodes are started, indexed and connected before the clock starts)."
  sc_unit[$sc]=bytes
  set_methods socat scp rsync syncthing
  st_note
  ssh_up
  run_methods
  sshd_stop
  drop_payload
}
scen_small() {
  sc=small
  set_loopback
  tree_payload "$small_files"
  sc_title[$sc]="small: $small_files files of 4 KiB over loopback"
  sc_desc[$sc]="$small_files files of 4 KiB random data in 100 folders ($(human "$payload_bytes")) over 127.0.0.1: rsync -a and scp -r through a throwaway sshd, and \`hdp download PEER/SHARE --wait\` of the whole share. The received tree is checked with diff -r."
  sc_unit[$sc]=files
  set_methods rsync scp syncthing
  st_note
  ssh_up
  run_methods
  sshd_stop
  drop_payload
}
link_desc() { # DELAY RATE LOSS_PPM
  echo "$1 ms each way ($(($1 * 2)) ms RTT), $2 Mbit/s, $(calc "$3 / 10000") % loss each way"
}
iperf_note() {
  note "$sc" "iperf3: one TCP stream (kernel default congestion control, $(cat /proc/sys/net/ipv4/tcp_congestion_control 2> /dev/null || echo '?')) for ${iperf_secs} s; its rate is shown as the time the payload would take at that rate."
}
scen_shaped() { # NAME DELAY RATE LOSS
  if [ -z "$link_ok" ]; then
    if [ -n "$explicit" ] && [ -z "$smoke" ]; then die "$1 needs the shaped link: $link_why"; fi
    skip "$1" "$link_why"
    return 0
  fi
  local prof
  prof=$(link_desc "$2" "$3" "$4")
  sc=$1
  set_shaped
  case $sc in
    link)
      file_payload "$link_size"
      sc_title[$sc]="link: one $(human "$payload_bytes") file over a shaped link"
      sc_desc[$sc]="One file of $(human "$payload_bytes") over a shaped link ($prof) between two network namespaces, hdp-sa (10.231.77.1, the sender) and hdp-sb (10.231.77.2, the receiver), emulated by scripts/linkemu/. scp pushes to an sshd in hdp-sb; hdp node b in hdp-sb downloads from node a in hdp-sa."
      sc_unit[$sc]=bytes
      set_methods iperf3 scp syncthing
      st_note
      ;;
    harsh)
      file_payload "$harsh_size"
      sc_title[$sc]="harsh: one $(human "$payload_bytes") file over a harsh link"
      sc_desc[$sc]="One file of $(human "$payload_bytes") over a shaped link ($prof) between the namespaces hdp-sa (sender) and hdp-sb (receiver)."
      sc_unit[$sc]=bytes
      set_methods iperf3
      ;;
    link-small)
      tree_payload "$link_small_files"
      sc_title[$sc]="link-small: $link_small_files files of 4 KiB over the shaped link"
      sc_desc[$sc]="$link_small_files files of 4 KiB random data in 100 folders ($(human "$payload_bytes")) over the \`link\` profile ($prof): rsync -a over ssh (sshd in hdp-sb) and hdp (node b in hdp-sb downloads the share of node a in hdp-sa). \`vs iperf3\` is the share of the link's TCP rate, measured in the same run, that each method achieves."
      sc_unit[$sc]=files
      set_methods iperf3 rsync
      ;;
  esac
  iperf_note
  link_up "$2" "$3" "$4"
  ssh_up
  run_methods
  sshd_stop
  link_down
  drop_payload
}
scen_index() {
  sc=index
  local tree="$work/index-tree" run m t0 t1 count cache drop=""
  sc_title[$sc]="index: $index_files files"
  sc_unit[$sc]=files
  sc_methods[$sc]="find ${hdp_methods[*]}"
  sc_bases[$sc]="find"
  log "$sc: creating $index_files empty files in 1000 folders"
  make_tree "$tree" "$index_files" 1000 0
  sync
  if [ -n "$smoke" ]; then
    cache="warm: the tree is read once before the first method (--smoke does not drop the machine's caches)"
    find "$tree" > /dev/null
  elif [ -n "$is_root" ] && [ -w /proc/sys/vm/drop_caches ]; then
    drop=1 cache="cold-ish: \`sync; echo 3 > /proc/sys/vm/drop_caches\` before each method"
  else
    cache="warm: the tree is read once before the first method (not root: no drop_caches)"
    find "$tree" > /dev/null
  fi
  sc_desc[$sc]="$index_files empty files in 1000 folders. \`find DIR -type f | wc -l\` against one fresh hdp node sharing DIR, timed from its start until \`hdp shares --json\` shows the share with scanning false and all files (polled every 0.1 s). Page cache: $cache. Memory: the node's VmRSS right after indexing and its VmHWM (peak)."
  for ((run = 1; run <= runs; run++)); do
    for m in ${sc_methods[$sc]}; do
      if [ -n "$drop" ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
      if [ "$m" = find ]; then
        t0=$(now)
        count=$(find "$tree" -type f | wc -l)
        t1=$(now)
        [ "$count" -eq "$index_files" ] || die "index: find counted $count files, not $index_files"
      else
        local envs
        read -ra envs <<< "$(variant_of "$m")"
        t0=$(now)
        start_node x "$tree" "${envs[@]}"
        wait_indexed x "$(basename "$tree")" "$index_files" "$tmo"
        t1=$(now)
        record_mem "$sc" "$m" "$run" x "$(proc_kib "${node_pid[x]}" VmRSS)" "$(proc_kib "${node_pid[x]}" VmHWM)"
        note "$sc" "$m run $run: the node's own scan time (last_scan_ms) $(jq -r '.[0].last_scan_ms' <<< "$shares_json") ms"
        stop_node x
      fi
      timed "$t0" "$t1"
      record "$sc" "$m" "$run" "$elapsed" 0 "$index_files"
    done
  done
  log "$sc: deleting the tree"
  rm -rf "$tree"
}
rss_ns="hdp-bench-rss"
rss_ns_made=""
rss_ns_del() {
  [ -n "$rss_ns_made" ] || return 0
  ip netns del "$rss_ns" 2> /dev/null || true
  rss_ns_made=""
}
cleanup_cmds+=(rss_ns_del)
scen_rss() {
  sc=rss
  local share="$work/rss-share" run m port mpid state envs ok confs=()
  mkdir -p "$share"
  sc_title[$sc]="rss: an idle node"
  sc_unit[$sc]=memory
  for m in "${hdp_methods[@]}"; do confs+=("$m"); done
  if [ -n "$netns_ok" ] && command -v mosquitto > /dev/null; then
    confs+=(hdp-mqtt-mdns)
  else
    if [ -n "$explicit" ] && [ -z "$smoke" ]; then die "rss (b) needs mosquitto and a network namespace (root)"; fi
    skip "rss hdp-mqtt-mdns" "needs mosquitto and a network namespace (root)"
  fi
  sc_methods[$sc]="${confs[*]}"
  sc_desc[$sc]="RSS of one node sharing an empty folder after ${rss_idle} s idle, no peers. hdp: \`--mqtt off --no-mdns\` (as in the other scenarios). hdp-mqtt-mdns: MQTT through a local mosquitto and mDNS on, both in a fresh network namespace $rss_ns with only \`lo\` (so nothing reaches a real network); the node is checked to be connected to the broker. VmRSS and VmHWM are read just before the node is stopped. The RSS of the nodes during a transfer is in \`big\`."
  if [[ " ${confs[*]} " == *" hdp-mqtt-mdns "* ]]; then
    if netns_exists "$rss_ns"; then die "network namespace $rss_ns exists already"; fi
    rss_ns_made=1
    ip netns add "$rss_ns"
    ip -n "$rss_ns" link set lo up
    port=$(free_port) || die "no free port"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' "$port" > "$work/mosquitto.conf"
    ip netns exec "$rss_ns" mosquitto -c "$work/mosquitto.conf" 2> "$work/mosquitto.log" &
    mpid=$!
    bg_pids+=("$mpid")
    wait_listen "$port" "$mpid" mosquitto 127.0.0.1 || { cat "$work/mosquitto.log" >&2; die "mosquitto did not start"; }
    note "$sc" "mosquitto $(mosquitto -h 2> /dev/null | head -n 1 | awk '{ print $3 }') on 127.0.0.1:$port inside $rss_ns"
  fi
  for ((run = 1; run <= runs; run++)); do
    for m in "${confs[@]}"; do
      if [ "$m" = hdp-mqtt-mdns ]; then
        start_node r "$share" --ns "$rss_ns" --mqtt "mqtt://127.0.0.1:$port" --mdns --listen 0.0.0.0:0
        ok=""
        for _ in $(seq 1 100); do
          state=$(hdp_cli r info --json | jq -r '"\(.mqtt.state) \(.mdns)"') || die "hdp info (rss node) failed"
          [ "$state" = "connected true" ] && { ok=1; break; }
          sleep 0.1
        done
        [ -n "$ok" ] || { cat "${node_dir[r]}/log" >&2; die "rss: node not connected to mosquitto with mDNS on ($state)"; }
      else
        read -ra envs <<< "$(variant_of "$m")"
        start_node r "$share" "${envs[@]}"
      fi
      log "$sc $m run $run: idle for $rss_idle s"
      sleep "$rss_idle"
      stop_node r
      [[ $stopped_rss =~ ^[0-9]+$ ]] || die "rss: cannot read the node's VmRSS"
      record_mem "$sc" "$m" "$run" r "$stopped_rss" "$stopped_hwm"
      log "$sc $m run $run: VmRSS $stopped_rss KiB, VmHWM $stopped_hwm KiB"
    done
  done
  if [ -n "${mpid:-}" ]; then stop_pid "$mpid"; fi
  rss_ns_del
}

t_start=$(now)
for s in "${scenarios[@]}"; do
  log "=== $s"
  t_sc=$(now)
  case $s in
    big) scen_big ;;
    small) scen_small ;;
    link) scen_shaped link 25 100 1000 ;;
    harsh) scen_shaped harsh 75 20 10000 ;;
    link-small) scen_shaped link-small 25 100 1000 ;;
    index) scen_index ;;
    rss) scen_rss ;;
  esac
  [ -z "${sc_methods[$s]:-}" ] || scen_ran+=("$s")
  log "=== $s: $(printf '%.1f' "$(calc "$(now) - $t_sc")") s"
done
t_total=$(calc "$(now) - $t_start")

# --- report ----------------------------------------------------------------------------------
# summary.tsv: scenario method runs median min max bytes files (times in s)
summarize() {
  local s m
  printf 'scenario\tmethod\truns\tmedian\tmin\tmax\tbytes\tfiles\n'
  for s in "${scen_ran[@]}"; do
    [ "${sc_unit[$s]}" != memory ] || continue
    for m in ${sc_methods[$s]}; do
      awk -F'\t' -v s="$s" -v m="$m" '$1 == s && $2 == m { print $4 "\t" $5 "\t" $6 }' "$results/results.tsv" \
        | sort -g | awk -F'\t' -v s="$s" -v m="$m" '{ t[NR] = $1; b = $2; f = $3 }
          END { if (NR == 0) exit; med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2;
                printf "%s\t%s\t%d\t%.6f\t%.6f\t%.6f\t%s\t%s\n", s, m, NR, med, t[1], t[NR], b, f }'
    done
  done
}
summarize > "$results/summary.tsv"
med() { awk -F'\t' -v s="$1" -v m="$2" '$1 == s && $2 == m { print $4 }' "$results/summary.tsv"; } # SCEN METHOD
# mem_stat SCEN METHOD NODE COLUMN(5 rss, 6 hwm) WHAT(median|max|min) -> MiB
mem_stat() {
  awk -F'\t' -v s="$1" -v m="$2" -v n="$3" -v c="$4" '$1 == s && $2 == m && $4 == n && $c ~ /^[0-9]+$/ { print $c }' \
    "$results/memory.tsv" | sort -g | awk -v w="$5" '{ v[NR] = $1 } END { if (NR == 0) { print "?"; exit }
      x = (w == "max") ? v[NR] : (w == "min") ? v[1] : (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf "%.1f", x / 1024 }'
}

scenario_md() { # SCEN: its section of the markdown
  local s=$1 m b hdr sep row mm rate
  echo "## ${sc_title[$s]}"
  echo
  echo "${sc_desc[$s]}"
  echo
  if [ "${sc_unit[$s]}" = memory ]; then
    echo "| configuration | runs | VmRSS MiB, median (min-max) | VmHWM MiB, median (min-max) |"
    echo "|---|---:|---:|---:|"
    for m in ${sc_methods[$s]}; do
      printf '| %s | %s | %s (%s-%s) | %s (%s-%s) |\n' "$m" \
        "$(awk -F'\t' -v s="$s" -v m="$m" '$1 == s && $2 == m' "$results/memory.tsv" | wc -l)" \
        "$(mem_stat "$s" "$m" r 5 median)" "$(mem_stat "$s" "$m" r 5 min)" "$(mem_stat "$s" "$m" r 5 max)" \
        "$(mem_stat "$s" "$m" r 6 median)" "$(mem_stat "$s" "$m" r 6 min)" "$(mem_stat "$s" "$m" r 6 max)"
    done
    echo
  else
    hdr="| method | runs | median s | min s | max s |"
    sep="|---|---:|---:|---:|---:|"
    if [ "${sc_unit[$s]}" = files ]; then hdr+=" files/s |"; sep+="---:|"; fi
    if [ "$s" != index ]; then hdr+=" MiB/s |"; sep+="---:|"; fi
    for b in ${sc_bases[$s]}; do hdr+=" vs $b |"; sep+="---:|"; done
    echo "$hdr"
    echo "$sep"
    while IFS=$'\t' read -r _ m n md mn mx bytes files; do
      row=$(printf '| %s | %s | %.3f | %.3f | %.3f |' "$m" "$n" "$md" "$mn" "$mx")
      if [ "${sc_unit[$s]}" = files ]; then row+=$(printf ' %.0f |' "$(calc "$files / $md")"); fi
      if [ "$s" != index ]; then
        rate=$(calc "$bytes / 1048576 / $md")
        if [ "$(calc "$rate < 10")" = 1 ]; then row+=$(printf ' %.2f |' "$rate"); else row+=$(printf ' %.1f |' "$rate"); fi
      fi
      for b in ${sc_bases[$s]}; do
        mm=$(med "$s" "$b")
        row+=$(printf ' %.2f |' "$(calc "$mm / $md")")
      done
      echo "$row"
    done < <(awk -F'\t' -v s="$s" '$1 == s' "$results/summary.tsv")
    echo
    if [ -n "${sc_bases[$s]}" ]; then
      echo "\`vs X\` is the method's throughput over X's, from the medians (above 1: faster than X)."
    fi
    for m in ${sc_methods[$s]}; do
      [[ $m == hdp* || $m == syncthing ]] || continue
      if [ "$s" = index ]; then
        printf -- '- %s node after indexing: VmRSS %s MiB (median), peak VmHWM %s MiB (largest over the runs)\n' \
          "$m" "$(mem_stat "$s" "$m" x 5 median)" "$(mem_stat "$s" "$m" x 6 max)"
      else
        printf -- '- %s peak RSS (VmHWM, largest over the runs): sender (a) %s MiB, receiver (b) %s MiB\n' \
          "$m" "$(mem_stat "$s" "$m" a 6 max)" "$(mem_stat "$s" "$m" b 6 max)"
      fi
    done
  fi
  awk -F'\t' -v s="$s" '$1 == s { print "- " $2 }' "$results/notes.tsv"
  echo
}

# The chart: hdp's median throughput over each baseline's, per scenario.
chart() { # PNG
  local s b i=0 dat="$results/chart.dat"
  : > "$dat"
  for s in "${scen_ran[@]}"; do
    [ "${sc_unit[$s]}" != memory ] || continue
    i=$((i + 1))
    for b in ${sc_bases[$s]}; do
      printf '%s\\nvs %s\t%s\t%d\n' "$s" "$b" "$(calc "$(med "$s" "$b") / $(med "$s" hdp)")" "$i" >> "$dat"
    done
  done
  [ -s "$dat" ] || return 2 # nothing to draw (only rss ran)
  local n width ymax
  n=$(wc -l < "$dat")
  ymax=$(awk -F'\t' '$2 > m { m = $2 } END { m *= 1.15; print (m < 1.2 ? 1.2 : m) }' "$dat")
  width=$((300 + n * 70))
  [ "$width" -ge 720 ] || width=720
  gnuplot << EOF
set terminal pngcairo size $width,540 noenhanced font ",10"
set output '$1'
set title "harddrive-party's throughput relative to each baseline\n(medians; 1 = as fast, higher is better)"
set bmargin 5
set style fill solid 0.85 border -1
set boxwidth 0.7
set grid ytics
set yrange [0:$ymax]
set xrange [-0.6:$n - 0.4]
set ylabel "hdp / baseline"
set xtics scale 0
set key off
set datafile separator "\t"
plot '$dat' using 0:2:3:xtic(1) with boxes lc variable, \
     '' using 0:2:(sprintf("%.2f", \$2)) with labels offset 0,0.8, \
     1 with lines dt 2 lc rgb "black"
EOF
}

machine_md() {
  local cpu mem fs
  cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  [ -n "$cpu" ] || cpu=$(uname -m)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  fs=$(df -T /tmp | awk 'NR == 2 { print $2 }')
  echo "- CPU: $cpu, $(nproc) cores (nproc)"
  echo "- RAM: $mem"
  echo "- kernel: $(uname -sr), $(uname -m)"
  echo "- /tmp (test data): $fs"
}
versions_md() {
  local ver
  ver=$("$hdp" --version 2>&1 | head -n 1)
  echo "- $ver, binary $( [ -n "${BENCH_HDP_BIN:-}" ] && echo "$hdp (BENCH_HDP_BIN)" || echo "built from the tree"), source tree $(git describe --always --dirty 2> /dev/null || echo '?')"
  command -v ssh > /dev/null && echo "- $(ssh -V 2>&1 | head -n 1)"
  command -v rsync > /dev/null && echo "- $(rsync --version | head -n 1 | tr -s ' ')"
  command -v iperf3 > /dev/null && echo "- $(iperf3 --version | head -n 1)"
  command -v socat > /dev/null && echo "- $(socat -V 2> /dev/null | grep -m 1 'socat version' | sed 's/ on .*//')"
  if [ -n "$with_syncthing" ]; then echo "- $(syncthing --version | head -n 1)"; fi
  command -v mosquitto > /dev/null && echo "- mosquitto $(mosquitto -h 2> /dev/null | head -n 1 | awk '{ print $3 }')"
  return 0
}

if [ -n "$smoke" ]; then out="$results/PERFORMANCE.md"; else out=${BENCH_OUT:-docs/PERFORMANCE.md}; fi
png="$(dirname "$out")/performance.png"
chart_ok=""
if command -v gnuplot > /dev/null; then
  rc=0
  chart "$png" 2> "$results/gnuplot.log" || rc=$?
  case $rc in
    0) chart_ok=1 ;;
    2) ;;
    *) die "gnuplot failed: $(cat "$results/gnuplot.log")" ;;
  esac
fi
{
  echo "# Performance"
  echo
  echo "Measured by \`scripts/bench.sh\`$( [ -n "$smoke" ] && echo ' --smoke (tiny sizes: not a measurement)') on $(date -u '+%Y-%m-%d %H:%M UTC'), $runs run(s) of each method, interleaved; the tables give the median, min and max time. Scenarios in this run: ${scen_ran[*]:-none}."
  for s in "${scen_skipped[@]}"; do echo "Skipped: $s."; done
  echo
  echo "## How to reproduce"
  echo
  echo '```sh'
  echo "scripts/bench.sh                      # all scenarios: ${all_scenarios[*]}"
  echo "scripts/bench.sh small index          # some of them"
  echo "scripts/bench.sh --smoke              # everything at tiny sizes, for CI (~1 min)"
  echo "BENCH_RUNS=5 BENCH_BIG_SIZE=4G scripts/bench.sh big"
  echo "BENCH_VARIANTS='t2:HDP_THREADS=2' scripts/bench.sh big   # A/B of node settings"
  echo '```'
  echo
  echo "Knobs (environment): BENCH_RUNS, BENCH_BIG_SIZE, BENCH_SMALL_FILES, BENCH_LINK_SIZE, BENCH_HARSH_SIZE, BENCH_LINK_SMALL_FILES, BENCH_INDEX_FILES, BENCH_RSS_IDLE, BENCH_IPERF_SECS, BENCH_TIMEOUT, BENCH_VARIANTS, BENCH_SYNCTHING, BENCH_OUT, BENCH_HDP_BIN; see the header of scripts/bench.sh. The shaped-link scenarios and dropping the page cache need root. Every transfer is checked byte for byte (cmp or diff -r). Received folders are set aside and deleted only when their scenario ends: ext4 passes over inodes freed in the last 30 s when it allocates, so deleting 10,000 files between two methods would slow the next one down, an artifact of back-to-back runs. hdp nodes are fresh (new identity and index) for every run and run with \`--mqtt off --stun off --no-portmap --no-mdns\`; their start, indexing and connection happen before the clock starts, while scp and rsync include their ssh handshake."
  echo
  echo "## Machine"
  echo
  machine_md
  echo
  echo "## Versions"
  echo
  versions_md
  echo
  if [ -n "$chart_ok" ]; then
    echo "## Summary"
    echo
    echo "![hdp's median throughput over each baseline's, per scenario]($(basename "$png"))"
    echo
  fi
  for s in "${scen_ran[@]}"; do scenario_md "$s"; done
} > "$out"

echo
for s in "${scen_ran[@]}"; do scenario_md "$s"; done
for s in "${scen_skipped[@]}"; do echo "skipped: $s"; done
printf 'total %.0f s; results: %s; report: %s%s\n' "$t_total" "$results" "$out" \
  "$( [ -n "$chart_ok" ] && echo ", chart: $png")"
