#!/usr/bin/env bash
# NAT lab: real Linux NATs built from network namespaces, veth pairs and
# nftables, for testing NAT traversal (see docs/NATLAB.md for the picture).
#
#   natlab.sh up LAB KIND1 [KIND2...]   build lab LAB (<= 4 chars, [a-z0-9]); one
#                                       home per KIND: cone|restricted|symmetric|upnp|igd
#                                       (igd: upnp with NAT-PMP off, UPnP IGD only).
#                                       Rebuilds the lab if it exists.
#   natlab.sh down LAB|all              kill the lab's processes, delete its
#                                       namespaces and state dir (always exits 0
#                                       when run as root, even if LAB is half-built
#                                       or absent); "all" removes every hdp-* lab
#   natlab.sh selftest LAB              measure each home's NAT (table; non-zero on mismatch)
#   natlab.sh flush LAB [I]             conntrack -F in router I (or every router)
#   natlab.sh renat LAB I               router I's NAT switches to other external ports
#                                       (and conntrack is flushed): flows get new mappings
#   natlab.sh stun LAB off|on           stop / start the STUN server (coturn)
#   natlab.sh exec LAB hI|rI|inet CMD...   run CMD in that namespace
#   natlab.sh pkts LAB I                host I's eth0 tx_packets counter
#   natlab.sh status LAB                namespaces, addresses, daemons, NAT rules
#
# Namespaces: hdp-LAB-inet (the "internet": MQTT broker 203.0.113.1:1883, STUN
# on 203.0.113.2:3478 and 203.0.113.3:3478), and per home I: hdp-LAB-rI (router,
# WAN 203.0.113.(10+I), LAN 198.18.I.1/24) and hdp-LAB-hI (host, 198.18.I.2,
# interface eth0).  Nothing is connected to the machine's real network.
# State (configs, logs, pid files): /run/hdp-natlab/LAB/.
#
# Environment: NATLAB_WAIT (seconds to wait for each daemon to answer, default
# 5), NATLAB_KEEP=1 (a failed `up` leaves the half-built lab for debugging),
# NATLAB_PYTHON (interpreter for stun-probe.py, default python3).
#
# Exit status: 0 ok; 1 failure (message on stderr); 2 cannot run here (not
# root, or a needed tool is missing: scripts/setup.sh --test installs them).
# Test harnesses treat 2 as "skip".  64: bad usage.
set -Eeuo pipefail

PATH="$PATH:/usr/sbin:/sbin"
STATE_ROOT=/run/hdp-natlab
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROBE="$HERE/stun-probe.py"
PY="${NATLAB_PYTHON:-python3}"
TABLE=hdpnat                   # the nftables table (family inet) in every router
BROKER_IP=203.0.113.1
STUN_IP1=203.0.113.2
STUN_IP2=203.0.113.3
STUN_PORT=3478
KINDS="cone restricted symmetric upnp igd"
MAX_HOMES=40
WAIT="${NATLAB_WAIT:-5}"     # seconds to wait for each daemon to answer

trap '[[ "$BASH_COMMAND" == return* ]] || echo "natlab: error: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

say() { echo "natlab: $*" >&2; }
die() { say "error: $*"; exit 1; }
cannot_run() { say "cannot run: $*"; exit 2; }
usage() { sed -n '2,/^set -Eeuo/{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 64; }

have() { command -v "$1" >/dev/null 2>&1; }
need_root() { [ "$(id -u)" -eq 0 ] || cannot_run "must be root (network namespaces, nftables)"; }
need_tools() {
  local t
  for t in "$@"; do
    have "$t" || cannot_run "missing tool '$t' (run scripts/setup.sh --test, as root)"
  done
}

check_lab_name() {
  [[ "$1" =~ ^[a-z0-9]{1,4}$ ]] || die "lab name must be 1-4 characters of [a-z0-9], got '$1'"
  [ "$1" != all ] || die "'all' is not a lab name"
}

# home_arg I|rI|hI: the home number.
home_arg() {
  local i=${1#[rh]}
  [[ "$i" =~ ^[0-9]+$ ]] || die "expected a home number, got '$1'"
  home_kind "$i" >/dev/null
  echo "$i"
}

# ---- names and addresses ----------------------------------------------------
ns_inet() { echo "hdp-$LAB-inet"; }
ns_r() { echo "hdp-$LAB-r$1"; }
ns_h() { echo "hdp-$LAB-h$1"; }
wan_ip() { echo "203.0.113.$((10 + $1))"; }
lan_gw() { echo "198.18.$1.1"; }
host_ip() { echo "198.18.$1.2"; }

ns_exists() { [ -e "/run/netns/$1" ]; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Every namespace of lab $1 that exists, one per line.
lab_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^hdp-$1-(inet|r[0-9]+|h[0-9]+)$" || true
}

# "I KIND" lines of the current lab.
homes() { cat "$DIR/kinds"; }
home_kind() {
  local k
  k="$(awk -v i="$1" '$1 == i {print $2}' "$DIR/kinds" 2>/dev/null || true)"
  [ -n "$k" ] || die "lab $LAB has no home $1"
  echo "$k"
}

require_lab() {
  DIR="$STATE_ROOT/$LAB"
  if ! ns_exists "$(ns_inet)" || [ ! -f "$DIR/kinds" ]; then
    die "lab $LAB is not up (natlab.sh up $LAB ...)"
  fi
}

# ---- waiting and daemons ------------------------------------------------------
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# pid_alive PIDFILE: the process recorded in PIDFILE is running.
pid_alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for SECONDS DESCRIPTION PIDFILE|- CMD...: runs CMD until it succeeds;
# fails after SECONDS, or at once if the process in PIDFILE has died.
wait_for() {
  local secs=$1 desc=$2 pidfile=$3 deadline
  shift 3
  deadline=$(($(now_ms) + secs * 1000))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ "$pidfile" != - ] && ! pid_alive "$pidfile"; then
      say "$desc: the process exited"
      return 1
    fi
    [ "$(now_ms)" -lt "$deadline" ] || { say "$desc: no answer within ${secs}s"; return 1; }
    sleep 0.1
  done
}

# start_daemon NAME NS LOG CMD...: starts CMD in NS in the background (own
# session, stdio on LOG) and records its pid in $DIR/NAME.pid.
start_daemon() {
  local name=$1 ns=$2 log=$3
  shift 3
  setsid ip netns exec "$ns" "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

# lab_pid FILE: prints the pid recorded in FILE if that process still lives in
# one of this lab's namespaces (guards against a reused pid).
lab_pid() {
  local pid ns
  pid="$(cat "$1" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  ns="$(ip netns identify "$pid" 2>/dev/null || true)"
  if [[ "$ns" == hdp-"$LAB"-* ]]; then echo "$pid"; fi
}

# terminate PID...: SIGTERM, then SIGKILL for what still runs after 1 s; waits
# (at most 1 s more) until they are gone.  Never this script itself.
terminate() {
  local pid k alive
  for pid in "$@"; do
    if [ "$pid" != $$ ] && [ "$pid" != "$BASHPID" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for ((k = 0; k < 20; k++)); do
    alive=0
    for pid in "$@"; do
      if [ "$pid" != $$ ] && [ "$pid" != "$BASHPID" ] && kill -0 "$pid" 2>/dev/null; then
        alive=1
        if ((k == 10)); then kill -KILL "$pid" 2>/dev/null || true; fi
      fi
    done
    ((alive)) || return 0
    sleep 0.1
  done
}

# stop_pidfile FILE: stops the process recorded in FILE (if it is the lab's).
stop_pidfile() {
  local pid
  pid="$(lab_pid "$1")"
  rm -f "$1"
  if [ -n "$pid" ]; then terminate "$pid"; fi
}

show_log() {
  [ -f "$1" ] || return 0
  say "last lines of $1:"
  tail -n 15 "$1" | sed 's/^/    /' >&2
}

# ---- internet: MQTT broker and STUN -------------------------------------------------
broker_answers() { in_ns "$(ns_inet)" bash -c "exec 3<>/dev/tcp/$BROKER_IP/1883"; }

start_broker() {
  cat >"$DIR/mosquitto.conf" <<EOF
# natlab $LAB: MQTT broker of the lab's internet (anonymous, in memory only)
listener 1883 $BROKER_IP
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
EOF
  start_daemon mosquitto "$(ns_inet)" "$DIR/mosquitto.log" mosquitto -c "$DIR/mosquitto.conf"
  wait_for "$WAIT" "mosquitto on $BROKER_IP:1883" "$DIR/mosquitto.pid" broker_answers ||
    { show_log "$DIR/mosquitto.log"; return 1; }
}

stun_answers() {
  in_ns "$(ns_inet)" "$PY" "$PROBE" -b "$BROKER_IP" -t 0.5 "$STUN_IP1:$STUN_PORT" "$STUN_IP2:$STUN_PORT"
}

start_stun() {
  # -n: no config file.  STUN only (no TURN relaying, no auth), on both IPs so
  # a client can compare the mappings two destinations see; with two IPs coturn
  # also answers RFC 5780 CHANGE-REQUESTs (alternate port 3479), which
  # miniupnpd's STUN check uses.
  start_daemon turnserver "$(ns_inet)" "$DIR/turnserver.out" \
    turnserver -n --stun-only -L "$STUN_IP1" -L "$STUN_IP2" -p "$STUN_PORT" \
    --no-cli --no-tls --no-dtls --no-software-attribute \
    --log-file "$DIR/turnserver.log" --simple-log --no-stdout-log \
    --pidfile "$DIR/turnserver.daemon.pid" --userdb "$DIR/turndb"
  wait_for "$WAIT" "coturn on $STUN_IP1/$STUN_IP2:$STUN_PORT" "$DIR/turnserver.pid" stun_answers ||
    { show_log "$DIR/turnserver.log"; show_log "$DIR/turnserver.out"; return 1; }
}

stun_running() { pid_alive "$DIR/turnserver.pid"; }

# ---- routers ---------------------------------------------------------------------
# nat_chains I KIND GEN: the rules of the prerouting and postrouting nat chains.
# GEN 0 is the kind's normal behaviour; GEN >= 1 (after `renat`) maps to other
# external ports.
nat_chains() {
  local i=$1 kind=$2 gen=$3 wan lan host key range
  wan="$(wan_ip "$i")"; lan="198.18.$i.0/24"; host="$(host_ip "$i")"
  key=$(((gen - 1) % 15 * 4096 + 4096))                       # 0x1000..0xf000
  if ((gen % 2)); then range=40000-49999; else range=50000-59999; fi

  echo "  chain prerouting {"
  echo "    type nat hook prerouting priority dstnat; policy accept;"
  if is_upnp "$kind"; then echo "    jump prerouting_miniupnpd"; fi
  if [ "$kind" = cone ]; then
    # endpoint-independent filtering: any inbound UDP to the WAN address goes
    # to the host, on the port the outbound mapping uses.
    if ((gen == 0)); then
      echo "    iifname \"wan\" ip daddr $wan meta l4proto udp dnat ip to $host"
    else
      echo "    iifname \"wan\" ip daddr $wan meta l4proto udp dnat ip to $host : udp dport ^ $key"
    fi
  fi
  echo "  }"

  echo "  chain postrouting {"
  echo "    type nat hook postrouting priority srcnat; policy accept;"
  if is_upnp "$kind"; then echo "    jump postrouting_miniupnpd"; fi
  if [ "$kind" = symmetric ]; then
    if ((gen == 0)); then
      echo "    oifname \"wan\" ip saddr $lan masquerade fully-random"
    else
      echo "    oifname \"wan\" ip saddr $lan meta l4proto { tcp, udp } masquerade to :$range fully-random"
      echo "    oifname \"wan\" ip saddr $lan masquerade fully-random"
    fi
  else
    # masquerade keeps the source port when it can: endpoint-independent mapping.
    if ((gen > 0)); then
      # a fixed permutation of ports (xor), so the mapping stays
      # endpoint-independent but every port changes.
      echo "    oifname \"wan\" ip saddr $lan meta l4proto udp snat ip to $wan : udp sport ^ $key"
      echo "    oifname \"wan\" ip saddr $lan meta l4proto tcp snat ip to $wan : tcp sport ^ $key"
    fi
    echo "    oifname \"wan\" ip saddr $lan masquerade"
  fi
  echo "  }"
}

router_ruleset() {
  local i=$1 kind=$2
  echo "# natlab $LAB router r$i: $kind"
  echo "table inet $TABLE {"
  cat <<EOF
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    iifname "lan" accept
    ct status dnat accept
EOF
  if is_upnp "$kind"; then echo "    jump miniupnpd"; fi
  cat <<EOF
    iifname "wan" drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    # the router's own STUN check (miniupnpd) gets answers from other ports
    iifname "wan" ip saddr { $STUN_IP1, $STUN_IP2 } udp sport { 3478, 3479 } accept
    iifname "wan" icmp type echo-request accept
    # Everything else unsolicited is dropped silently, as by a home router's
    # input firewall.  Dropped here, its conntrack entry is never confirmed,
    # so it cannot take the WAN port a LAN host's mapping will want (Linux
    # would then map that host port to another port: simultaneous hole
    # punching would fail).
    iifname "wan" drop
  }
EOF
  if is_upnp "$kind"; then
    cat <<EOF
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
EOF
  fi
  nat_chains "$i" "$kind" 0
  echo "}"
}

natpmp_answers() {
  local out
  out="$(in_ns "$(ns_h "$1")" "$PY" "$PROBE" -t 0.5 --natpmp "$(lan_gw "$1")")" || return 1
  grep -qx "natpmp public $(wan_ip "$1")" <<<"$out"
}

# Kinds with a miniupnpd on the router.
is_upnp() { [ "$1" = upnp ] || [ "$1" = igd ]; }

# The router's UPnP IGD answers HTTP on its LAN address.
igd_answers() {
  in_ns "$(ns_h "$1")" timeout 1 bash -c "exec 3<>/dev/tcp/$(lan_gw "$1")/5000" 2>/dev/null
}

start_miniupnpd() {
  local i=$1 kind=${2:-upnp} d="$DIR/r$1" natpmp=yes ready=natpmp_answers
  if [ "$kind" = igd ]; then natpmp=no ready=igd_answers; fi
  mkdir -p "$d"
  cat >"$d/miniupnpd.conf" <<EOF
# natlab $LAB router r$i: miniupnpd (NAT-PMP/PCP on UDP 5351, UPnP IGD on
# HTTP $(lan_gw "$i"):5000 + SSDP), listening on the LAN side only.
ext_ifname=wan
listening_ip=lan
http_port=5000
enable_natpmp=$natpmp
enable_upnp=yes
secure_mode=yes
ipv6_disable=yes
# miniupnpd refuses reserved/documentation addresses (203.0.113.0/24) as its
# external IP unless it learns it by STUN (and STUN shows no filtering).
ext_perform_stun=yes
ext_stun_host=$STUN_IP1
ext_stun_port=$STUN_PORT
upnp_table_name=$TABLE
upnp_nat_table_name=$TABLE
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
lease_file=$d/upnp.leases
minissdpdsocket=$d/minissdpd.sock
uuid=00000000-0000-4000-8000-0000000000$(printf '%02x' "$i")
system_uptime=yes
notify_interval=60
min_lifetime=120
max_lifetime=86400
allow 1024-65535 $(host_ip "$i")/32 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  start_daemon "miniupnpd-r$i" "$(ns_r "$i")" "$d/miniupnpd.log" \
    miniupnpd -d -f "$d/miniupnpd.conf" -P "$d/miniupnpd.daemon.pid"
  wait_for "$WAIT" "miniupnpd in r$i ($kind on $(lan_gw "$i"))" "$DIR/miniupnpd-r$i.pid" "$ready" "$i" ||
    { show_log "$d/miniupnpd.log"; return 1; }
}

no_ipv6() { in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=0 >/dev/null 2>&1 || true; }

build_home() {
  local i=$1 kind=$2 r h inet
  r="$(ns_r "$i")"; h="$(ns_h "$i")"; inet="$(ns_inet)"
  ip netns add "$r"
  ip netns add "$h"
  no_ipv6 "$r"; no_ipv6 "$h"
  ip -n "$r" link set lo up
  ip -n "$h" link set lo up
  # WAN: veth from the router into the internet's bridge.
  ip -n "$r" link add wan type veth peer name "r$i" netns "$inet"
  ip -n "$inet" link set "r$i" master br0 up
  ip -n "$r" addr add "$(wan_ip "$i")/24" dev wan
  ip -n "$r" link set wan up
  # LAN: veth from the router to the host.
  ip -n "$r" link add lan type veth peer name eth0 netns "$h"
  ip -n "$r" addr add "$(lan_gw "$i")/24" dev lan
  ip -n "$r" link set lan up
  ip -n "$h" addr add "$(host_ip "$i")/24" dev eth0
  ip -n "$h" link set eth0 up
  ip -n "$h" route add default via "$(lan_gw "$i")"
  in_ns "$r" sysctl -qw net.ipv4.ip_forward=1
  router_ruleset "$i" "$kind" >"$DIR/r$i.nft"
  in_ns "$r" nft -f "$DIR/r$i.nft"
  echo 0 >"$DIR/r$i.renat"
}

cmd_up() {
  [ $# -ge 2 ] || usage
  LAB=$1; shift
  check_lab_name "$LAB"
  [ $# -le $MAX_HOMES ] || die "at most $MAX_HOMES homes"
  local k i n=0 tools=(ip nft conntrack sysctl setsid mosquitto turnserver "$PY")
  for k in "$@"; do
    [[ " $KINDS " == *" $k "* ]] || die "unknown NAT kind '$k' (kinds: $KINDS)"
    if is_upnp "$k"; then tools+=(miniupnpd); fi
  done
  need_tools "${tools[@]}"
  if [[ " ${tools[*]} " == *" miniupnpd "* ]] && ! miniupnpd --version 2>&1 | grep -q nftables; then
    cannot_run "miniupnpd is not the nftables build (install miniupnpd-nftables)"
  fi
  [ -f "$PROBE" ] || die "missing $PROBE"

  down_lab "$LAB"
  DIR="$STATE_ROOT/$LAB"
  mkdir -p "$DIR"
  trap 'up_failed $?' EXIT
  for k in "$@"; do n=$((n + 1)); echo "$n $k"; done >"$DIR/kinds"

  local inet
  inet="$(ns_inet)"
  ip netns add "$inet"
  no_ipv6 "$inet"
  ip -n "$inet" link set lo up
  ip -n "$inet" link add br0 type bridge
  ip -n "$inet" addr add "$BROKER_IP/24" dev br0
  ip -n "$inet" addr add "$STUN_IP1/24" dev br0
  ip -n "$inet" addr add "$STUN_IP2/24" dev br0
  ip -n "$inet" link set br0 up
  while read -r i k; do build_home "$i" "$k"; done < <(homes)

  start_broker
  start_stun
  while read -r i k; do
    if is_upnp "$k"; then start_miniupnpd "$i" "$k"; fi
  done < <(homes)
  trap - EXIT
  echo "natlab: lab $LAB is up:"
  echo "  internet hdp-$LAB-inet: broker $BROKER_IP:1883, STUN $STUN_IP1:$STUN_PORT + $STUN_IP2:$STUN_PORT"
  while read -r i k; do
    printf '  home %s: %-10s router hdp-%s-r%s (WAN %s)  host hdp-%s-h%s (%s, gw %s)\n' \
      "$i" "$k" "$LAB" "$i" "$(wan_ip "$i")" "$LAB" "$i" "$(host_ip "$i")" "$(lan_gw "$i")"
  done < <(homes)
}

up_failed() {
  [ "$1" -ne 0 ] || return 0
  if [ "${NATLAB_KEEP:-}" = 1 ]; then
    say "up failed; NATLAB_KEEP=1: leaving lab $LAB as it is (state in $DIR)"
  else
    say "up failed; tearing lab $LAB down (set NATLAB_KEEP=1 to keep it for debugging)"
    down_lab "$LAB" || true
  fi
}

# ---- down ----------------------------------------------------------------------
down_lab() {
  local lab=$1 f ns nss pid pids=()
  LAB=$lab
  DIR="$STATE_ROOT/$lab"
  nss="$(lab_namespaces "$lab")"
  # 1. the processes we started, by recorded pid, and 2. anything else still
  # running in the lab's namespaces (nodes a test started there, shells ...).
  if [ -d "$DIR" ]; then
    for f in "$DIR"/*.pid; do
      [ -e "$f" ] || continue
      case "$f" in *.daemon.pid) continue ;; esac
      pid="$(lab_pid "$f")"
      if [ -n "$pid" ]; then pids+=("$pid"); fi
    done
  fi
  for ns in $nss; do
    mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null || true)
  done
  if [ ${#pids[@]} -gt 0 ]; then terminate "${pids[@]}"; fi
  # late arrivals (started while we were stopping the others)
  pids=()
  for ns in $nss; do
    mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null || true)
  done
  if [ ${#pids[@]} -gt 0 ]; then terminate "${pids[@]}"; fi
  # 3. the namespaces (their interfaces, nftables and conntrack go with them).
  for ns in $nss; do
    ip netns del "$ns" 2>/dev/null || say "warning: could not delete namespace $ns"
  done
  rm -rf "$DIR"
  rmdir "$STATE_ROOT" 2>/dev/null || true
}

cmd_down() {
  [ $# -eq 1 ] || usage
  if [ "$1" = all ]; then
    local labs d
    labs="$(
      {
        ip netns list 2>/dev/null | awk '{print $1}' | sed -nE 's/^hdp-([a-z0-9]{1,4})-(inet|r[0-9]+|h[0-9]+)$/\1/p'
        for d in "$STATE_ROOT"/*; do if [ -d "$d" ]; then basename "$d"; fi; done
      } | sort -u
    )"
    for d in $labs; do
      down_lab "$d"
      echo "natlab: lab $d is down"
    done
  else
    check_lab_name "$1"
    down_lab "$1"
    echo "natlab: lab $1 is down"
  fi
}

# ---- flush / renat / stun --------------------------------------------------------
flush_router() { in_ns "$(ns_r "$1")" conntrack -F >/dev/null 2>&1 || true; }

cmd_flush() {
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
  LAB=$1; check_lab_name "$LAB"; require_lab
  need_tools conntrack
  local i k
  if [ $# -eq 2 ]; then
    i="$(home_arg "$2")"
    flush_router "$i"
    echo "natlab: flushed conntrack of r$i"
  else
    while read -r i k; do flush_router "$i"; done < <(homes)
    echo "natlab: flushed conntrack of every router"
  fi
}

cmd_renat() {
  [ $# -eq 2 ] || usage
  LAB=$1; check_lab_name "$LAB"; require_lab
  need_tools nft conntrack
  local i kind gen
  i="$(home_arg "$2")"
  kind="$(home_kind "$i")"
  gen=$(($(cat "$DIR/r$i.renat" 2>/dev/null || echo 0) + 1))
  {
    echo "flush chain inet $TABLE prerouting"
    echo "flush chain inet $TABLE postrouting"
    echo "table inet $TABLE {"
    nat_chains "$i" "$kind" "$gen"
    echo "}"
  } >"$DIR/r$i.renat.nft"
  in_ns "$(ns_r "$i")" nft -f "$DIR/r$i.renat.nft"
  echo "$gen" >"$DIR/r$i.renat"
  flush_router "$i"
  echo "natlab: r$i ($kind) now maps to other external ports (renat generation $gen); conntrack flushed"
}

cmd_stun() {
  [ $# -eq 2 ] || usage
  LAB=$1; check_lab_name "$LAB"; require_lab
  case "$2" in
    off)
      stop_pidfile "$DIR/turnserver.pid"
      rm -f "$DIR/turnserver.daemon.pid"
      echo "natlab: STUN server of lab $LAB stopped"
      ;;
    on)
      need_tools turnserver "$PY"
      if stun_running; then
        echo "natlab: STUN server of lab $LAB already running"
      else
        start_stun
        echo "natlab: STUN server of lab $LAB running"
      fi
      ;;
    *) usage ;;
  esac
}

# ---- exec / pkts / status ----------------------------------------------------------
ns_arg() {
  case "$1" in
    inet) ns_inet ;;
    h[0-9]*) home_kind "${1#h}" >/dev/null; ns_h "${1#h}" ;;
    r[0-9]*) home_kind "${1#r}" >/dev/null; ns_r "${1#r}" ;;
    *) die "namespace must be inet, hI or rI, got '$1'" ;;
  esac
}

cmd_exec() {
  [ $# -ge 3 ] || usage
  LAB=$1; check_lab_name "$LAB"; require_lab
  local ns
  ns="$(ns_arg "$2")"
  shift 2
  trap - ERR
  exec ip netns exec "$ns" "$@"
}

cmd_pkts() {
  [ $# -eq 2 ] || usage
  LAB=$1; check_lab_name "$LAB"; require_lab
  local i
  i="$(home_arg "$2")"
  in_ns "$(ns_h "$i")" cat /sys/class/net/eth0/statistics/tx_packets
}

cmd_status() {
  [ $# -eq 1 ] || usage
  LAB=$1; check_lab_name "$LAB"; require_lab
  local f name pid state i k ns chain
  echo "lab $LAB (state $DIR)"
  echo "namespaces: $(lab_namespaces "$LAB" | sort -V | tr '\n' ' ')"
  echo "daemons:"
  for f in "$DIR"/*.pid; do
    [ -e "$f" ] || continue
    case "$f" in *.daemon.pid) continue ;; esac
    name="$(basename "$f" .pid)"; pid="$(cat "$f")"
    if pid_alive "$f"; then state=running; else state=DEAD; fi
    printf '  %-14s pid %-8s %s\n' "$name" "$pid" "$state"
  done
  stun_running || echo "  turnserver     (stopped)"
  echo "addresses:"
  for ns in $(lab_namespaces "$LAB" | sort -V); do
    ip -n "$ns" -br -4 addr show | awk -v ns="$ns" '$1 != "lo" {printf "  %-16s %-12s %s\n", ns, $1, $3}'
  done
  while read -r i k; do
    echo "router r$i: $k, renat generation $(cat "$DIR/r$i.renat"), conntrack entries: $(in_ns "$(ns_r "$i")" conntrack -C 2>/dev/null || echo '?')"
    for chain in prerouting postrouting; do
      in_ns "$(ns_r "$i")" nft list chain inet "$TABLE" "$chain" 2>/dev/null |
        grep -vE '^(table|})|chain |type |^[[:space:]]*}' | sed "s/^[[:space:]]*/    $chain: /" || true
    done
    if is_upnp "$k"; then
      in_ns "$(ns_r "$i")" nft list chain inet "$TABLE" prerouting_miniupnpd 2>/dev/null |
        grep -E 'dnat' | sed 's/^[[:space:]]*/    upnp mapping: /' || true
    fi
  done < <(homes)
}

# ---- selftest --------------------------------------------------------------------
# probe_bg OUT NS ARGS...: runs stun-probe in NS in the background, output to OUT; sets PROBE_PID.
probe_bg() {
  local outf=$1 ns=$2
  shift 2
  in_ns "$ns" "$PY" "$PROBE" "$@" >"$outf" 2>&1 &
  PROBE_PID=$!
}

lines_in() { [ "$(grep -c "$1" "$2" 2>/dev/null || true)" -ge "$3" ]; }
field() { awk -v k="$2" -v n="$3" '$0 ~ k {print $n; exit}' "$1"; }

# Sends one datagram from the internet's 203.0.113.1 (an address the host never
# talked to) to IP:PORT.
send_from_internet() {
  in_ns "$(ns_inet)" "$PY" "$PROBE" -b "$BROKER_IP" --send "$1" >/dev/null 2>&1 || true
}

cmd_selftest() {
  [ $# -eq 1 ] || usage
  LAB=$1; check_lab_name "$LAB"; require_lab
  need_tools "$PY"
  local i k wan port out m2 m3 mapping inbound natpmp broker expect_map expect_in result fail=0 ext pub
  printf '%-4s %-10s %-20s %-20s %-9s %-11s %-26s %-6s %s\n' \
    home kind "mapped@$STUN_IP1" "mapped@$STUN_IP2" mapping unsolicited natpmp broker result
  while read -r i k; do
    wan="$(wan_ip "$i")"
    port=$((20000 + RANDOM % 15000))
    out="$DIR/selftest-h$i.out"
    result=PASS

    # STUN from one local port to both server IPs, then listen for 2 s while
    # 203.0.113.1 sends a datagram to the mapping the first server saw.
    probe_bg "$out" "$(ns_h "$i")" -p "$port" -t 1 --listen 2 "$STUN_IP1:$STUN_PORT" "$STUN_IP2:$STUN_PORT"
    wait_for 5 "stun probe in h$i" - lines_in '^stun ' "$out" 2 || true
    m2="$(field "$out" "^stun $STUN_IP1:" 3)"; m3="$(field "$out" "^stun $STUN_IP2:" 3)"
    if [[ "$m2" == *:* && "$m2" != none ]]; then send_from_internet "$wan:${m2##*:}"; fi
    wait "$PROBE_PID" 2>/dev/null || true
    if [[ "$m2" != "$wan":* || "$m3" != "$wan":* ]]; then
      mapping=no-stun; result=FAIL
    elif [ "$m2" = "$m3" ]; then mapping=same; else mapping=different; fi
    if grep -q '^recv [0-9]' "$out"; then inbound=delivered; else inbound=blocked; fi

    if [ "$k" = symmetric ]; then expect_map=different; else expect_map=same; fi
    if [ "$k" = cone ]; then expect_in=delivered; else expect_in=blocked; fi
    [ "$mapping" = "$expect_map" ] || { mapping="$mapping!"; result=FAIL; }
    [ "$inbound" = "$expect_in" ] || { inbound="$inbound!"; result=FAIL; }

    # NAT-PMP: ask the router for a UDP mapping of another port, then check
    # that an unsolicited datagram to the external port reaches the host.
    natpmp=-
    if [ "$k" = upnp ]; then
      probe_bg "$out.pmp" "$(ns_h "$i")" -p "$((port + 1))" -t 1 --natpmp-map "$(lan_gw "$i")" --lifetime 120 --listen 2
      wait_for 5 "natpmp probe in h$i" - lines_in '^natpmp map' "$out.pmp" 1 || true
      pub="$(field "$out.pmp" '^natpmp public' 3)"
      ext="$(field "$out.pmp" '^natpmp map' 5)"
      if [[ "$ext" == "$wan":* ]]; then send_from_internet "$ext"; fi
      wait "$PROBE_PID" 2>/dev/null || true
      if [ "$pub" != "$wan" ] || [[ "$ext" != "$wan":* ]]; then
        natpmp="no-mapping!"; result=FAIL
      elif grep -q '^recv [0-9]' "$out.pmp"; then
        natpmp="$((port + 1))->${ext##*:}:delivered"
      else
        natpmp="$((port + 1))->${ext##*:}:blocked!"; result=FAIL
      fi
    fi

    # The MQTT broker is reachable through the NAT (TCP).
    if in_ns "$(ns_h "$i")" timeout 3 bash -c "exec 3<>/dev/tcp/$BROKER_IP/1883" 2>/dev/null; then
      broker=ok
    else
      broker="FAIL!"; result=FAIL
    fi

    [ "$result" = PASS ] || fail=1
    printf '%-4s %-10s %-20s %-20s %-9s %-11s %-26s %-6s %s\n' \
      "h$i" "$k" "${m2:-none}" "${m3:-none}" "$mapping" "$inbound" "$natpmp" "$broker" "$result"
  done < <(homes)
  if ((fail)); then
    echo "natlab: selftest of lab $LAB FAILED (values marked ! differ from the NAT kind; probe output in $DIR/selftest-h*.out)"
    return 1
  fi
  echo "natlab: selftest of lab $LAB passed"
}

# ---- main ------------------------------------------------------------------------
main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case "$cmd" in
    -h | --help | help) usage ;;
  esac
  need_root
  need_tools ip
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    flush) cmd_flush "$@" ;;
    renat) cmd_renat "$@" ;;
    stun) cmd_stun "$@" ;;
    exec) cmd_exec "$@" ;;
    pkts) cmd_pkts "$@" ;;
    status) cmd_status "$@" ;;
    selftest) cmd_selftest "$@" ;;
    *) say "unknown command '$cmd'"; usage ;;
  esac
}

main "$@"
