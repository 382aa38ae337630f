#!/usr/bin/env bash
# NAT traversal benchmark: how often, how fast and at what packet cost two
# nodes behind real NATs (tests/natlab/natlab.sh, see docs/NATLAB.md) get a
# direct connection, for each pairing of NAT kinds:
#   cone-cone cone-restricted restricted-restricted upnp-symmetric
#   igd-symmetric cone-symmetric restricted-symmetric symmetric-symmetric
# (upnp: miniupnpd with NAT-PMP and UPnP IGD; igd: UPnP IGD only)
# Each pairing gets one lab (`natlab.sh up`); in it, RUNS attempts, each with
# conntrack flushed (`natlab.sh flush`), two nodes with fresh data dirs (new
# identities) on a fresh topic, started at the same moment, meeting through
# the lab's MQTT broker and learning their addresses from its two STUN
# addresses. Both nodes' `hdp peers --json` is polled every 100 ms until both
# list the other as connected (a success) or 30 s have passed (a failure).
#
#   scripts/bench-nat.sh [RUNS]     # attempts per pairing, default 10
#
# The table, one line per pairing:
#   direct %     attempts in which both nodes reported the other connected
#                within 30 s (any path: lan, direct, mapped, punched, birthday)
#   median s,    time from starting the nodes to the poll that saw both
#   p90 s        connected, over the successful attempts (p90: nearest rank).
#                An upper bound: a poll of both nodes itself takes some tens
#                of ms, and it includes each node's start-up (identity, STUN,
#                MQTT), so it is "time to a usable connection", not punch time.
#   packets      median of the packets both hosts sent during the attempt
#                (eth0 tx_packets of both host namespaces, summed, from the
#                start to the end of the attempt): STUN, MQTT (TCP), ARP,
#                NAT-PMP, probes and QUIC all count.
#   paths seen   how often each path was reported ("a/b" when the two ends
#                named different paths; "-" a failure).
# symmetric-symmetric has no direct path, so there the right outcome is the
# node's "no direct path" verdict and the table reads instead:
#   verdict %    attempts in which both nodes reported "no direct path" within
#                30 s (and neither connected)
#   median s     time until both reported it
#   packets/30s  median packets both hosts sent in the whole 30 s (no storm:
#                low hundreds is expected; thousands would be a bug)
# The machine's load shows in the times: a 2-core box that is compiling
# gives noisy figures.
#
# Environment:
#   PAIRINGS="restricted-symmetric cone-cone"   only these pairings (in the
#                        order given; default all, in the order above)
#   HDP_BIN=path         the hdp binary (default $CARGO_TARGET_DIR/release/hdp,
#                        CARGO_TARGET_DIR defaulting to ~/.cache/hdp-target;
#                        built with cargo if it is missing)
#   BENCH_KEEP=1         keep the data dirs and logs of successful attempts
#                        too (failed attempts' are always kept)
#
# The nodes run a copy of the binary taken at the start; the report names the
# original's path, build time and sha256 (the git HEAD it prints is the
# checkout's, which need not be what the binary was built from).
#
# Needs root and what `scripts/setup.sh --test` installs (the NAT lab's
# tools), plus jq (installed with apt-get when missing). Works in a temporary
# directory /tmp/hdp-bench-nat.XXXXXX that it leaves behind with the results
# (bench-nat-results.txt, runs.tsv) and, for each failed attempt, a directory
# PAIRING/run-N with both nodes' data dirs, logs (a/log, b/log, debug level),
# last peer lists and `hdp info`, and poll.log (every poll's answer). At exit,
# Ctrl-C included, it stops every node it started (by pid) and takes down
# every lab it built. Labs are named bcc, bcr, brr, bus, bis, bcs, brs, bss, so
# they do not clash with the e2e tests' labs.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # awk/printf decimal points

ALL_PAIRINGS="cone-cone cone-restricted restricted-restricted upnp-symmetric igd-symmetric cone-symmetric restricted-symmetric symmetric-symmetric"
TIMEOUT_S=30  # per attempt
POLL_S=0.1    # between polls
STOP_WAIT=150 # tenths of a second a node may take to exit after SIGTERM
NATLAB=tests/natlab/natlab.sh
BROKER=mqtt://203.0.113.1:1883
STUN1=203.0.113.2:3478
STUN2=203.0.113.3:3478

log() { echo "bench-nat: $*" >&2; }
die() { echo "bench-nat: error: $*" >&2; exit 1; }

runs=${1:-10}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]   (attempts per pairing, a positive integer)" >&2; exit 2; }
pairings=${PAIRINGS:-$ALL_PAIRINGS}
for p in $pairings; do
  [[ " $ALL_PAIRINGS " == *" $p "* ]] || die "unknown pairing '$p' in PAIRINGS (known: $ALL_PAIRINGS)"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (the NAT lab uses network namespaces and nftables)"

# The node's own HDP_* variables (an HDP_SHARE or HDP_TOKEN from the caller's
# shell) would change what the nodes and the client commands do; HDP_BIN is
# this script's own.
hdp=${HDP_BIN:-}
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^HDP_' || true)

# --- tools and binary -----------------------------------------------------------
if ! command -v jq > /dev/null; then
  log "apt-get install jq"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends jq >&2
fi
if [ -z "$hdp" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
  hdp="$CARGO_TARGET_DIR/release/hdp"
  if [ ! -x "$hdp" ]; then
    log "no $hdp: cargo build --release -p hdp-node"
    cargo build --release --locked -p hdp-node --bin hdp >&2
  fi
fi
[ -x "$hdp" ] || die "no hdp binary at $hdp"
hdp=$(realpath "$hdp")
bin_desc="$hdp (built $(date -r "$hdp" '+%F %T'), sha256 $(sha256sum "$hdp" | cut -c1-12))"
commit=$(git rev-parse --short HEAD 2> /dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2> /dev/null || true)" ]; then commit="$commit (+ uncommitted changes)"; fi

# --- temp dir, nodes, labs, cleanup -------------------------------------------------
work=$(mktemp -d /tmp/hdp-bench-nat.XXXXXX)
# The nodes run a copy, so a rebuild during the benchmark (the binary is
# replaced in place) cannot mix two builds in one table.
cp "$hdp" "$work/hdp"
hdp="$work/hdp"
results="$work/bench-nat-results.txt"
runs_tsv="$work/runs.tsv"
node_pids=() # nodes still running
labs_up=()   # labs built and not yet taken down
failed_runs=()
cleanup() {
  local p lab alive
  trap - INT TERM
  if [ ${#node_pids[@]} -gt 0 ]; then
    log "stopping ${#node_pids[@]} node(s): ${node_pids[*]}"
    for p in "${node_pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
    for _ in $(seq 1 50); do
      alive=""
      for p in "${node_pids[@]}"; do kill -0 "$p" 2> /dev/null && alive=1; done
      [ -z "$alive" ] && break
      sleep 0.1
    done
    for p in "${node_pids[@]}"; do
      if kill -0 "$p" 2> /dev/null; then
        log "node $p still running 5 s after SIGTERM: SIGKILL"
        kill -KILL "$p" 2> /dev/null || true
      fi
      wait "$p" 2> /dev/null || true
    done
  fi
  for lab in "${labs_up[@]}"; do
    "$NATLAB" down "$lab" > /dev/null 2>&1 || log "warning: could not take lab $lab down (try: $NATLAB down $lab)"
  done
  rm -f "$work/hdp"
  log "work dir: $work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
forget_pid() {
  local p keep=()
  for p in "${node_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  node_pids=("${keep[@]}")
}
forget_lab() {
  local l keep=()
  for l in "${labs_up[@]}"; do [ "$l" = "$1" ] || keep+=("$l"); done
  labs_up=("${keep[@]}")
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; } # T0 T1
past() { awk -v t="$1" -v d="$2" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n - t >= d) }'; } # T0 SECS

lab_name() { # PAIRING: bcc, bcr, ...
  local a=${1%%-*} b=${1#*-}
  echo "b${a:0:1}${b:0:1}"
}

# --- one node --------------------------------------------------------------------
declare -A pid_of=() dir_of=() ns_of=()
start_node() { # NODE(a|b) NS DIR TOPIC
  local n=$1 ns=$2 d=$3 topic=$4
  mkdir -p "$d/data" "$d/dl"
  RUST_LOG=info,hdp_node=debug ip netns exec "$ns" "$hdp" start --data-dir "$d/data" --download-dir "$d/dl" \
    --http 127.0.0.1:3030 --listen 0.0.0.0:0 --topic "$topic" --mqtt "$BROKER" \
    --stun "$STUN1" --stun "$STUN2" --no-mdns --no-qr < /dev/null > "$d/out" 2> "$d/log" &
  pid_of[$n]=$!
  node_pids+=("$!")
  dir_of[$n]=$d
  ns_of[$n]=$ns
}
cli() { # NODE CMD ARGS...
  local n=$1
  shift
  timeout 5 ip netns exec "${ns_of[$n]}" "$hdp" "$@" --http 127.0.0.1:3030 --data-dir "${dir_of[$n]}/data"
}
# poll NODE: one line "CONNECTED<TAB>PATH<TAB>ERROR" from the node's peer list
# (CONNECTED 1 when some peer is connected; ERROR the first peer error, a
# note when there is none, or the client's own error when the node does not
# answer yet). Also keeps the last answer in DIR/peers.json.
poll() {
  local n=$1 d=${dir_of[$1]} json line
  if json=$(cli "$n" peers --json 2>&1) && line=$(jq -r 'if type != "array" then error("not a list")
      elif any(.[]; .connected == true)
      then "1\t\([.[] | select(.connected == true)][0].path // "-")\t"
      elif length == 0 then "0\t-\t(no peer listed)"
      else "0\t-\t\([.[] | .error | select(. != null)][0] // "(peer listed, not connected, no error)"
        | gsub("[\t\n]"; " "))" end' <<< "$json" 2> /dev/null); then
    printf '%s\n' "$json" > "$d/peers.json"
    printf '%s\n' "$line"
  else
    printf '0\t-\t(peers: %s)\n' "$(tr '\n\t' '  ' <<< "$json" | cut -c1-200)"
  fi
}
# stop_node NODE: SIGTERM, up to 15 s for it to exit, then SIGKILL. Sets
# stop_note ("" or what went wrong). Not in a subshell: only this shell can
# reap its children.
stop_note=""
stop_nodes() { # NODE...
  local n pid st alive
  stop_note=""
  for n in "$@"; do kill -TERM "${pid_of[$n]}" 2> /dev/null || true; done
  for _ in $(seq 1 "$STOP_WAIT"); do
    alive=""
    for n in "$@"; do kill -0 "${pid_of[$n]}" 2> /dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for n in "$@"; do
    pid=${pid_of[$n]}
    if kill -0 "$pid" 2> /dev/null; then
      kill -KILL "$pid" 2> /dev/null || true
      stop_note+="node $n (pid $pid) SIGKILLed: still running $((STOP_WAIT / 10)) s after SIGTERM; "
      log "node $n (pid $pid) did not exit within $((STOP_WAIT / 10)) s of SIGTERM: SIGKILL"
    fi
    st=0
    wait "$pid" 2> /dev/null || st=$?
    if [ "$st" -ne 0 ] && [ "$st" -ne 137 ]; then stop_note+="node $n exited with status $st; "; fi
    forget_pid "$pid"
  done
}

pkts() { "$NATLAB" pkts "$1" "$2"; } # LAB I

# --- one attempt --------------------------------------------------------------------
# attempt PAIRING LAB RUN: appends one line to runs.tsv:
#   pairing run outcome secs path packets pkts_a pkts_b nat_a nat_b note error
# outcome: connected | timeout | verdict | no-verdict | connected! (symmetric
# pair that connected anyway)
attempt() {
  local pairing=$1 lab=$2 run=$3 rdir topic sym="" a0 b0 a1 b1 t0 t1 la lb ca pa ea cb pb eb
  local outcome="" secs="" path="-" err="" verdict_t="" nat_a nat_b packets n
  if [ "$pairing" = symmetric-symmetric ]; then sym=1; fi
  rdir="$work/$pairing/run-$run"
  topic="bench-nat-$(basename "$work" | tr -cd 'a-zA-Z0-9')-$lab-$run"
  mkdir -p "$rdir"
  "$NATLAB" flush "$lab" > /dev/null
  a0=$(pkts "$lab" 1)
  b0=$(pkts "$lab" 2)
  t0=$(now)
  start_node a "hdp-$lab-h1" "$rdir/a" "$topic"
  start_node b "hdp-$lab-h2" "$rdir/b" "$topic"
  while :; do
    la=$(poll a)
    lb=$(poll b)
    t1=$(now)
    printf '%s\ta\t%s\n%s\tb\t%s\n' "$(elapsed "$t0" "$t1")" "$la" "$(elapsed "$t0" "$t1")" "$lb" >> "$rdir/poll.log"
    IFS=$'\t' read -r ca pa ea <<< "$la"
    IFS=$'\t' read -r cb pb eb <<< "$lb"
    if [ "$ca" = 1 ] && [ "$cb" = 1 ]; then
      secs=$(elapsed "$t0" "$t1")
      if [ "$pa" = "$pb" ]; then path=$pa; else path="$pa/$pb"; fi
      if [ -n "$sym" ]; then outcome="connected!"; else outcome=connected; fi
      break
    fi
    if [ -n "$sym" ] && [ -z "$verdict_t" ] && [[ $ea == *"no direct path"* ]] && [[ $eb == *"no direct path"* ]]; then
      verdict_t=$(elapsed "$t0" "$t1")
    fi
    for n in a b; do
      kill -0 "${pid_of[$n]}" 2> /dev/null || { err="node $n exited early; "; break 2; }
    done
    if past "$t0" "$TIMEOUT_S"; then break; fi
    sleep "$POLL_S"
  done
  if [ -z "$outcome" ]; then
    err+="a: $ea | b: $eb"
    if [ -n "$sym" ] && [ -n "$verdict_t" ]; then
      outcome=verdict
      secs=$verdict_t
    elif [ -n "$sym" ]; then
      outcome=no-verdict
    else
      outcome=timeout
    fi
  fi
  a1=$(pkts "$lab" 1)
  b1=$(pkts "$lab" 2)
  packets=$((a1 - a0 + b1 - b0))
  nat_a=$(cli a info --json 2> /dev/null | jq -r '.nat.nat_type // "?"' 2> /dev/null || echo "?")
  nat_b=$(cli b info --json 2> /dev/null | jq -r '.nat.nat_type // "?"' 2> /dev/null || echo "?")
  cli a info --json > "$rdir/a/info.json" 2>&1 || true
  cli b info --json > "$rdir/b/info.json" 2>&1 || true
  stop_nodes a b
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pairing" "$run" "$outcome" "${secs:--}" "$path" \
    "$packets" "$((a1 - a0))" "$((b1 - b0))" "${nat_a:-?}" "${nat_b:-?}" "${stop_note:--}" "${err:--}" >> "$runs_tsv"
  log "$(printf '%-21s run %2d/%d: %-10s %7ss  path %-17s %5d packets  nat %s/%s' "$pairing" "$run" "$runs" \
    "$outcome" "${secs:--}" "$path" "$packets" "${nat_a:-?}" "${nat_b:-?}")"
  if [ "$outcome" = connected ] || [ "$outcome" = verdict ]; then
    if [ -n "$stop_note" ]; then
      log "  $stop_note (logs kept: $rdir)"
      failed_runs+=("$rdir")
    elif [ "${BENCH_KEEP:-}" != 1 ]; then
      rm -rf "$rdir"
    fi
  else
    log "  FAILED: $err ${stop_note}"
    log "  logs: $rdir/a/log $rdir/b/log"
    failed_runs+=("$rdir")
  fi
}

# --- the pairings -----------------------------------------------------------------
log "binary $bin_desc; git HEAD $commit; $runs run(s) per pairing; work dir $work"
started=$(now)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for pairing in $pairings; do
  lab=$(lab_name "$pairing")
  log "$pairing: natlab up $lab ${pairing%%-*} ${pairing#*-}"
  labs_up+=("$lab")
  st=0
  "$NATLAB" up "$lab" "${pairing%%-*}" "${pairing#*-}" > "$work/natlab-$lab.log" 2>&1 || st=$?
  if [ "$st" -ne 0 ]; then
    cat "$work/natlab-$lab.log" >&2
    [ "$st" -eq 2 ] && die "the NAT lab cannot run here (scripts/setup.sh --test installs its tools)"
    die "natlab up $lab failed (status $st)"
  fi
  for ((run = 1; run <= runs; run++)); do attempt "$pairing" "$lab" "$run"; done
  "$NATLAB" down "$lab" > /dev/null 2>&1 || log "warning: natlab down $lab failed"
  forget_lab "$lab"
done
took=$(elapsed "$started" "$(now)")

# --- report -----------------------------------------------------------------------
{
  echo "NAT traversal benchmark: git HEAD $commit"
  echo "binary: $bin_desc"
  echo "$runs attempt(s) per pairing, ${TIMEOUT_S} s each at most, $(nproc) CPUs, load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; took $(awk -v s="$took" 'BEGIN { printf "%dm%02ds", s / 60, s % 60 }')"
  echo
  python3 - "$runs_tsv" "$pairings" << 'PY'
import math, statistics, sys, collections

rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rows[f[0]].append(
        dict(run=f[1], outcome=f[2], secs=None if f[3] == "-" else float(f[3]), path=f[4], packets=int(f[5]),
             note=f[10], error=f[11])
    )
order = sys.argv[2].split()


def p90(v):
    v = sorted(v)
    return v[max(0, math.ceil(0.9 * len(v)) - 1)]


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


direct = [p for p in order if p != "symmetric-symmetric" and p in rows]
if direct:
    print(f"{'pairing':<22} {'runs':>4} {'direct %':>8} {'median s':>8} {'p90 s':>7} {'packets':>8}  paths seen (counts)")
    for p in direct:
        r = rows[p]
        ok = [x for x in r if x["outcome"] == "connected"]
        t = [x["secs"] for x in ok]
        paths = collections.Counter(x["path"] for x in r)
        seen = " ".join(f"{k}:{v}" for k, v in sorted(paths.items(), key=lambda kv: (-kv[1], kv[0])))
        print(
            f"{p:<22} {len(r):>4} {100 * len(ok) / len(r):>8.0f} {fmt(statistics.median(t) if t else None):>8}"
            f" {fmt(p90(t) if t else None):>7} {statistics.median(x['packets'] for x in r):>8.0f}  {seen}"
        )
if "symmetric-symmetric" in rows:
    r = rows["symmetric-symmetric"]
    ok = [x for x in r if x["outcome"] == "verdict"]
    t = [x["secs"] for x in ok]
    outcomes = collections.Counter(x["outcome"] for x in r)
    seen = " ".join(f"{k}:{v}" for k, v in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])))
    if direct:
        print()
    print(f"{'pairing':<22} {'runs':>4} {'verdict %':>9} {'median s':>8} {'p90 s':>7} {'packets/30s':>11}  outcomes")
    print(
        f"{'symmetric-symmetric':<22} {len(r):>4} {100 * len(ok) / len(r):>9.0f} {fmt(statistics.median(t) if t else None):>8}"
        f" {fmt(p90(t) if t else None):>7} {statistics.median(x['packets'] for x in r):>11.0f}  {seen}"
    )
print()
print("direct %: both nodes listed the other as connected within 30 s; median/p90 s: start of the")
print("nodes to that poll (successful attempts); packets: median per attempt, both hosts' eth0 tx")
print("together; paths: home1/home2 when the two ends named different ones. symmetric-symmetric:")
print("both nodes reported \"no direct path\" (and neither connected); packets in the whole 30 s.")
kills = sum(1 for rs in rows.values() for x in rs if "SIGKILL" in x["note"])
print(f"nodes SIGKILLed after 15 s of SIGTERM: {kills}")
bad = [(p, x) for p in order for x in rows.get(p, []) if x["outcome"] not in ("connected", "verdict") or x["note"] != "-"]
if bad:
    print("failed attempts:")
    for p, x in bad:
        print(f"  {p} run {x['run']}: {x['outcome']}; {x['note'] if x['note'] != '-' else ''}{x['error']}")
PY
  if [ ${#failed_runs[@]} -gt 0 ]; then
    echo "logs of failed attempts:"
    for d in "${failed_runs[@]}"; do echo "  $d/a/log $d/b/log"; done
  fi
  echo "per-attempt figures: $runs_tsv"
} > "$results"
echo
cat "$results"
echo "results: $results"
