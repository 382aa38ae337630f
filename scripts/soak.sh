#!/usr/bin/env bash
# A long run of three nodes under churn, to find leaks, stuck downloads and
# lost or corrupt files that no short test shows. Not part of CI.
#
#   scripts/soak.sh HOURS [OUT_DIR]
#
# Three nodes (a, b, c) on topic `soak` meet through a local mosquitto on
# 127.0.0.1 (mDNS, STUN and port mapping off; nothing leaves loopback), each
# sharing its own folder of small and large files. Until HOURS have passed:
# - the broker is restarted every 2–4 minutes;
# - b or c is killed every 3–5 minutes (SIGKILL or SIGTERM at random) and
#   started again a few seconds later on the same data dir; a is never
#   killed, so its curves show leaks that restarts would hide;
# - every node keeps downloading its peers' shares: queued, sometimes paused
#   and resumed or cancelled, mostly completed; every completed download is
#   compared with its source (`diff -r`) and deleted;
# - every 10 s each node's RSS and open file descriptors are sampled.
# Then the churn stops and every download still open must finish within
# 10 minutes.
#
# Writes OUT_DIR/soak.csv (time, node, pid, rss_kib, anon_kib, fds),
# OUT_DIR/soak.png and OUT_DIR/SOAK.md (default OUT_DIR: docs/), and fails
# on a corrupt file, a download that does not finish, or a growth trend in
# node a: its median anonymous RSS (the heap: what a leak grows) in the last
# quarter over 1.25 × that of the second quarter plus 4 MiB, or its peak fd
# count over that of the second quarter plus 16. File-backed RSS (the
# binary, LMDB's mapped pages) is reported, not judged: it follows the size
# of the index and the download queue, and the kernel takes it back at will.
# Upload rates are capped at 8 MiB/s so the run leaves the machine usable.
# Needs: a built hdp (SOAK_HDP_BIN, else a release build), mosquitto, jq,
# gnuplot (scripts/setup.sh --test installs them).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
log() { echo "soak $(date -u +%H:%M:%S): $*" >&2; }

hours=${1:?usage: scripts/soak.sh HOURS [OUT_DIR]}
out=${2:-docs}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bench_unset_hdp_env
BENCH_HDP_BIN=${SOAK_HDP_BIN:-${BENCH_HDP_BIN:-}}
bench_hdp_bin release
bench_init_work hdp-soak
command -v mosquitto > /dev/null || [ -x /usr/sbin/mosquitto ] || die "mosquitto is missing: scripts/setup.sh --test"
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# --- the broker ---------------------------------------------------------
broker_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$broker_port" > "$work/mosquitto.conf"
broker_pid=""
broker_start() {
  "$mosquitto" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
  broker_pid=$!
  bg_pids+=("$broker_pid")
  wait_listen "$broker_port" "$broker_pid" mosquitto || die "mosquitto did not listen on $broker_port"
}
broker_restart() {
  stop_pid "$broker_pid"
  sleep $((1 + RANDOM % 5))
  broker_start
  log "broker restarted"
}

# --- the shares ---------------------------------------------------------
make_share() { # DIR SEED: 300 small files in 10 folders, 3 large ones
  local d=$1 seed=$2 i
  mkdir -p "$d"
  for i in $(seq 0 299); do
    mkdir -p "$d/f$((i % 10))"
    head -c $((100 + (i * 7919 + seed) % 60000)) /dev/urandom > "$d/f$((i % 10))/small-$i.dat"
  done
  for i in 1 2 3; do head -c $(((8 + i * 4) << 20)) /dev/urandom > "$d/large-$i.bin"; done
}

declare -A quic_port=() share=() name=() started_at=()
nodes=(a b c)
for n in "${nodes[@]}"; do
  share[$n]="$work/share-$n"
  make_share "${share[$n]}" "$RANDOM"
  quic_port[$n]=$(free_port)
  mkdir -p "$work/node-$n/dl"
done

# start NODE: (re)starts a node on its data dir, share and QUIC port.
start() {
  local n=$1 dir="$work/node-$1" url pid
  "$hdp" start --data-dir "$dir/data" --http 127.0.0.1:0 --listen "127.0.0.1:${quic_port[$n]}" --topic soak \
    --share "${share[$n]}" --download-dir "$dir/dl" --mqtt "mqtt://127.0.0.1:$broker_port" --no-mdns \
    --stun off --no-portmap --max-upload-rate 8M > "$dir/out" 2>> "$dir/log" &
  pid=$!
  bg_pids+=("$pid")
  url=$(wait_node_link "$n" "$pid" "$dir")
  node_pid[$n]=$pid node_http[$n]=$url node_data[$n]="$dir/data" node_dl[$n]="$dir/dl" node_ns[$n]=""
  node_dir[$n]=$dir
  started_at[$n]=$(date +%s)
}
kill_node() { # NODE SIGNAL
  local pid=${node_pid[$1]}
  kill "-$2" "$pid" 2> /dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  forget_pid "$pid"
}
api() { # NODE METHOD PATH [BODY]
  local n=$1 tok
  tok=$(cat "${node_data[$n]}/api-token")
  curl -sS -m 20 -X "$2" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    ${4:+--data "$4"} "http://${node_http[$n]}$3"
}
command -v curl > /dev/null || bench_ensure_packages curl:curl || die "curl is missing"

broker_start
for n in "${nodes[@]}"; do start "$n"; done
for n in "${nodes[@]}"; do
  wait_indexed "$n" "share-$n" 303 120
  name[$n]=$(hdp_cli "$n" info --json | jq -r .name)
done
log "nodes: a=${name[a]} b=${name[b]} c=${name[c]}; broker on $broker_port; $hdp"

csv="$out/soak.csv"
echo "time,node,pid,rss_kib,anon_kib,fds" > "$csv"
t0=$(date +%s)
sample() {
  local n pid rss anon fds
  for n in "${nodes[@]}"; do
    pid=${node_pid[$n]}
    rss=$(proc_kib "$pid" VmRSS)
    anon=$(proc_kib "$pid" RssAnon)
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2> /dev/null | wc -l)
    [ "$rss" = "?" ] || echo "$(($(date +%s) - t0)),$n,$pid,$rss,$anon,$fds" >> "$csv"
  done
}

# --- downloads ----------------------------------------------------------
# One download at a time per (downloader, source) pair, so the folder
# dl/share-SRC belongs to it alone: id, state we asked for, and whether it
# was cancelled.
declare -A dl_id=() dl_cancelled=()
done_ok=0 done_bad=0 cancelled=0 queued=0 failed_files=0
check_downloads() {
  local key n src id json state local
  for key in "${!dl_id[@]}"; do
    n=${key%:*} src=${key#*:} id=${dl_id[$key]}
    json=$(api "$n" GET "/api/downloads/$id" 2> /dev/null) || continue
    state=$(jq -r '.state // "gone"' <<< "$json" 2> /dev/null || echo "?")
    case $state in
      done)
        local_dir="${node_dl[$n]}/share-$src"
        if [ "$(jq -r .files_failed <<< "$json")" != 0 ]; then
          failed_files=$((failed_files + $(jq -r .files_failed <<< "$json")))
          log "FAILED FILES in $n←$src #$id: $json"
          done_bad=$((done_bad + 1))
        elif diff -r "${share[$src]}" "$local_dir" > "$work/diff.out" 2>&1; then
          done_ok=$((done_ok + 1))
        else
          done_bad=$((done_bad + 1))
          log "CORRUPT or missing files in $n←$src #$id: $(head -5 "$work/diff.out")"
          cp -r "$local_dir" "$work/corrupt-$n-$src-$id" 2> /dev/null || true
        fi
        rm -rf "$local_dir"
        unset "dl_id[$key]"
        ;;
      failed)
        log "download $n←$src #$id failed: $(jq -c '{error, files_failed}' <<< "$json")"
        done_bad=$((done_bad + 1))
        rm -rf "${node_dl[$n]}/share-$src"
        unset "dl_id[$key]"
        ;;
      gone)
        if [ "${dl_cancelled[$key]:-0}" = 1 ]; then
          rm -rf "${node_dl[$n]}/share-$src"
          unset "dl_id[$key]" "dl_cancelled[$key]"
        fi
        ;;
    esac
  done
}
churn_downloads() {
  local n src key id r
  for n in "${nodes[@]}"; do
    for src in "${nodes[@]}"; do
      [ "$n" != "$src" ] || continue
      key="$n:$src"
      if [ -z "${dl_id[$key]:-}" ]; then
        [ ! -e "${node_dl[$n]}/share-$src" ] || rm -rf "${node_dl[$n]}/share-$src"
        id=$(api "$n" POST /api/downloads "{\"peer\":\"${name[$src]}\",\"path\":\"share-$src\"}" 2> /dev/null \
          | jq -r '.id // empty' 2> /dev/null || true)
        if [ -n "$id" ]; then dl_id[$key]=$id; queued=$((queued + 1)); fi
        continue
      fi
      id=${dl_id[$key]} r=$((RANDOM % 100))
      if [ "${dl_cancelled[$key]:-0}" = 1 ]; then continue; fi
      if [ "$r" -lt 4 ]; then
        api "$n" POST "/api/downloads/$id/pause" > /dev/null 2>&1 || true
      elif [ "$r" -lt 12 ]; then
        api "$n" POST "/api/downloads/$id/resume" > /dev/null 2>&1 || true
      elif [ "$r" -lt 14 ]; then
        if api "$n" DELETE "/api/downloads/$id" > /dev/null 2>&1; then
          dl_cancelled[$key]=1
          cancelled=$((cancelled + 1))
        fi
      fi
    done
  done
}

# --- the run ------------------------------------------------------------
deadline=$((t0 + $(calc "int($hours * 3600)")))
next_broker=$((t0 + 120 + RANDOM % 120))
next_kill=$((t0 + 180 + RANDOM % 120))
kills=0 broker_restarts=0
log "churning until $(date -u -d "@$deadline" +%H:%M:%S)"
while [ "$(date +%s)" -lt "$deadline" ]; do
  sample
  check_downloads
  churn_downloads
  now_s=$(date +%s)
  if [ "$now_s" -ge "$next_broker" ]; then
    broker_restart
    broker_restarts=$((broker_restarts + 1))
    next_broker=$((now_s + 120 + RANDOM % 120))
  fi
  if [ "$now_s" -ge "$next_kill" ]; then
    victim=${nodes[$((1 + RANDOM % 2))]}
    sig=$([ $((RANDOM % 2)) = 0 ] && echo KILL || echo TERM)
    log "kill -$sig node $victim"
    kill_node "$victim" "$sig"
    sleep $((3 + RANDOM % 8))
    start "$victim"
    kills=$((kills + 1))
    next_kill=$(($(date +%s) + 180 + RANDOM % 120))
  fi
  sleep 10
done

# --- the end: every open download must finish ---------------------------
log "churn over; resuming and waiting for ${#dl_id[@]} open downloads"
for key in "${!dl_id[@]}"; do
  [ "${dl_cancelled[$key]:-0}" = 1 ] || api "${key%:*}" POST "/api/downloads/${dl_id[$key]}/resume" > /dev/null 2>&1 || true
done
end_by=$(($(date +%s) + 600))
while [ "$(date +%s)" -lt "$end_by" ]; do
  sample
  check_downloads
  open=0
  for key in "${!dl_id[@]}"; do [ "${dl_cancelled[$key]:-0}" = 1 ] || open=$((open + 1)); done
  [ "$open" -gt 0 ] || break
  sleep 10
done
stuck=()
for key in "${!dl_id[@]}"; do
  [ "${dl_cancelled[$key]:-0}" = 1 ] && continue
  stuck+=("$key#${dl_id[$key]}: $(api "${key%:*}" GET "/api/downloads/${dl_id[$key]}" | jq -c '{state, files_done, files_total, waiting, error}')")
done
for n in "${nodes[@]}"; do kill_node "$n" TERM; done

# --- the report ---------------------------------------------------------
trend=$(awk -F, -v n=a 'NR > 1 && $2 == n { t[++k] = $1; r[k] = $5; f[k] = $6; v[k] = $4 }
  function median(a, lo, hi,   i, m, s, tmp) { m = 0; for (i = lo; i <= hi; i++) s[++m] = a[i];
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (s[j] < s[i]) { tmp = s[i]; s[i] = s[j]; s[j] = tmp }
    return m ? s[int((m + 1) / 2)] : 0 }
  function maxof(a, lo, hi,   i, x) { x = 0; for (i = lo; i <= hi; i++) if (a[i] > x) x = a[i]; return x }
  END { q = int(k / 4); r2 = median(r, q + 1, 2 * q); r4 = median(r, 3 * q + 1, k);
        f2 = maxof(f, q + 1, 2 * q); f4 = maxof(f, 3 * q + 1, k);
        printf "%d %d %d %d %d %d", r2, r4, f2, f4, maxof(v, 1, k), maxof(r, 1, k) }' "$csv")
read -r rss_q2 rss_q4 fds_q2 fds_q4 rss_peak anon_peak <<< "$trend"
rss_ok=$(calc "$rss_q4 <= 1.25 * $rss_q2 + 4096")
fds_ok=$(calc "$fds_q4 <= $fds_q2 + 16")
gnuplot <<EOF 2> /dev/null || log "gnuplot failed; the CSV is there"
set terminal pngcairo size 1000,600 noenhanced
set output "$out/soak.png"
set datafile separator ","
set multiplot layout 2,1 title "scripts/soak.sh $hours h: a is never killed; b and c are killed every 3-5 min; the broker restarts every 2-4 min"
set ylabel "RSS (MiB)"
set key outside right
plot for [n in "a b c"] "$csv" using (\$1/60):(strcol(2) eq n ? \$4/1024 : 1/0) with points pt 7 ps 0.4 title n." RSS", \
     "$csv" using (\$1/60):(strcol(2) eq "a" ? \$5/1024 : 1/0) with points pt 6 ps 0.4 title "a anonymous"
set xlabel "minutes"
set ylabel "open fds"
plot for [n in "a b c"] "$csv" using (\$1/60):(strcol(2) eq n ? \$6 : 1/0) with points pt 7 ps 0.4 title n
unset multiplot
EOF
verdict=pass
if [ "$done_bad" -gt 0 ] || [ ${#stuck[@]} -gt 0 ] || [ "$rss_ok" != 1 ] || [ "$fds_ok" != 1 ]; then verdict=FAIL; fi
{
  echo "# Soak: $hours h of churn (scripts/soak.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores: $($hdp --version) from $hdp (scripts/soak.sh of $(git rev-parse --short HEAD 2> /dev/null || echo ?))."
  echo "Three nodes on one topic through a local mosquitto restarted $broker_restarts times; b and c killed $kills times"
  echo "(SIGKILL or SIGTERM) and restarted; downloads queued, paused, resumed, cancelled and completed all along."
  echo
  echo "| figure | value |"
  echo "|---|---|"
  echo "| downloads queued | $queued |"
  echo "| completed and identical to the source | $done_ok |"
  echo "| completed with a missing, failed or different file | $done_bad |"
  echo "| cancelled | $cancelled |"
  echo "| still open 10 min after the churn stopped | ${#stuck[@]} |"
  echo "| node a anonymous RSS (heap), median of the 2nd / last quarter | $((rss_q2 / 1024)) / $((rss_q4 / 1024)) MiB |"
  echo "| node a peak RSS (anonymous + file-backed) / peak anonymous | $((rss_peak / 1024)) / $((anon_peak / 1024)) MiB |"
  echo "| node a open fds, peak of the 2nd / last quarter | $fds_q2 / $fds_q4 |"
  echo "| verdict | $verdict |"
  echo
  echo "![RSS and fds over time](soak.png)"
  echo
  echo "Samples every 10 s: soak.csv (time s, node, pid, RSS KiB, anonymous RSS KiB, fds)."
  for s in "${stuck[@]}"; do echo "- stuck: $s"; done
} > "$out/SOAK.md"
cat "$out/SOAK.md"
[ "$verdict" = pass ] || die "soak failed: see $out/SOAK.md and $work"
