#!/usr/bin/env bash
# Fault tests across real containers: a 3-member compose ensemble (docker/compose.yml)
# takes one fault per scenario while zabkeeper-workload (workload/) runs 6 sessions
# against its published ports, writing, reading, locking and moving queue items, and
# one read-only session pinned to each member, all recording an invoke/complete
# history. After the heal, `zabkeeper-workload check`
# verifies: every acknowledged write is on every member (each read alone, after a
# sync), the members agree on the registers, the register writes and linearizable
# reads are linearizable and the plain reads session-consistent (zabkeeper-check),
# no two clients held the lock at once (and fencing tokens rose), the queue lost and
# duplicated nothing, and the first write after the heal was acknowledged within
# FAULTS_MAX_HEAL_S (default 15 s; the README's "Fault tests" says why).
#
#   docker/faults.sh [SCENARIO...]     default: the six fault scenarios, in this order
#
#   leader-cut     the leader is disconnected from the network, then reconnected
#   follower-cut   a follower is disconnected, then reconnected
#   leader-partition    the leader's peer traffic is dropped silently (iptables in its
#                  network namespace) while its clients still reach it, then let through
#   follower-partition  the same for a follower
#   kill9          the leader is killed (docker kill -s KILL), then started again
#   pause          the leader is frozen (docker pause) past the session timeout
#   rolling        every member restarted (SIGTERM) one by one, each back healthy first
#   power-loss     every member killed at once, then all started
#   five           (not in the default run) docker/compose-5.yml comes up healthy and
#                  serves a short workload, checked on all five members
#
# Environment: FAULTS_OUT (histories and reports; default target/faults),
# FAULTS_SERVER_FAULT (deliberately broken members, see below),
# ZABKEEPER_IMAGE (default zabkeeper:latest; docker/build.sh makes it),
# FAULTS_KEEP=1 leaves the ensemble running afterwards.
# Ports are free ones picked at start, so a cluster on 2181-2183 is not disturbed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${FAULTS_OUT:-$root/target/faults}
project=zkfaults$$
if command -v docker-compose >/dev/null; then
  compose=(docker-compose -p "$project" -f "$root/docker/compose.yml")
  compose5=(docker-compose -p "${project}five" -f "$root/docker/compose-5.yml")
else
  compose=(docker compose -p "$project" -f "$root/docker/compose.yml")
  compose5=(docker compose -p "${project}five" -f "$root/docker/compose-5.yml")
fi
net="${project}_zk"
# FAULTS_SERVER_FAULT=local-linearizable|stale-connect runs deliberately broken
# members (the server's test-only ZABKEEPER_UNSAFE_TEST_FAULT) through a compose
# override file, to see the checks fail: local-linearizable (linearizable reads
# served without a read index) fails follower-partition.
if [ -n "${FAULTS_SERVER_FAULT:-}" ]; then
  mkdir -p "$out"
  override="$out/server-fault.override.yml"
  {
    echo "services:"
    for i in 1 2 3; do
      printf '  zk%s:\n    environment:\n      ZABKEEPER_UNSAFE_TEST_FAULT: "%s"\n' "$i" "$FAULTS_SERVER_FAULT"
    done
  } >"$override"
  compose+=(-f "$override")
fi
all=(leader-cut follower-cut leader-partition follower-partition kill9 pause rolling power-loss)
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=("${all[@]}")
for s in "${scenarios[@]}"; do
  [[ " ${all[*]} five " == *" $s "* ]] || { echo "unknown scenario $s (one of: ${all[*]} five)" >&2; exit 2; }
done
max_heal_s=${FAULTS_MAX_HEAL_S:-15}
started=$(date +%s)

log() { echo "faults: $(date -u +%H:%M:%S) $*" >&2; }
now_ms() { date +%s%3N; }

mkdir -p "$out"
(cd "$root" && cargo build -q -p zabkeeper-workload -p zabkeeper-server --bin zabkeeper-workload --bin zabkeeper)
workload="$root/target/debug/zabkeeper-workload"
zabkeeper="$root/target/debug/zabkeeper"

# free_ports N: N distinct free ports (all held open while picked: ports picked one at
# a time can repeat, and compose then fails to publish one).
free_ports() {
  python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
natives=()
read -r -a ports <<<"$(free_ports 6)"
for i in 1 2 3; do
  export "ZK_PORT_$i=${ports[$((2 * i - 2))]}" "NATIVE_PORT_$i=${ports[$((2 * i - 1))]}"
  natives+=("127.0.0.1:${ports[$((2 * i - 1))]}")
done
servers=$(IFS=,; echo "${natives[*]}")

cleanup() {
  if [ "${FAULTS_KEEP:-}" = 1 ]; then
    log "ensemble left running: project $project, native ports $servers"
  else
    "${compose[@]}" down -v -t 2 >/dev/null 2>&1 || true
    [ -z "${five_up:-}" ] || "${compose5[@]}" down -v -t 2 >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# Container ids, looked up once after `up` (the containers live through every scenario;
# docker-compose takes a second or more per call, too slow for polling).
ids=()
cid() { echo "${ids[$1]}"; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(cid "$1")" 2>/dev/null || echo gone; }

# Waits until every member is healthy (serves clients).
wait_healthy() {
  local deadline=$(( $(date +%s) + ${1:-90} )) i ok
  while :; do
    ok=1
    for i in 1 2 3; do [ "$(health "$i")" = healthy ] || ok=0; done
    [ $ok = 1 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for i in 1 2 3; do log "zk$i: $(health "$i")"; done
      return 1
    fi
    sleep 1
  done
}

role() { { "$zabkeeper" status "${natives[$(($1 - 1))]}" 2>/dev/null || true; } | sed -n 's/.*role=\([a-z]*\).*/\1/p'; }
leader() { local i; for i in 1 2 3; do [ "$(role "$i")" = leading ] && { echo "$i"; return; }; done; echo ""; }
follower() { local i; for i in 1 2 3; do [ "$(role "$i")" = following ] && { echo "$i"; return; }; done; echo ""; }

cut() { docker network disconnect "$net" "$(cid "$1")"; }
rejoin() { docker network connect --alias "zk$1" "$net" "$(cid "$1")"; }
# partition I -A|-D: drops (or lets through again) every packet to or from a peer port
# in member I's network namespace, with the host's iptables (the image has none); its
# client ports stay reachable, so its sessions see a member that lost its quorum.
partition() {
  local pid chain
  pid=$(docker inspect -f '{{.State.Pid}}' "$(cid "$1")")
  for chain in INPUT OUTPUT; do
    nsenter -t "$pid" -n iptables "$2" "$chain" -p tcp -m multiport --ports 2888 -j DROP
  done
}

# run_scenario NAME HOLD_S: the workload runs 3 s, the fault comes and is healed
# HOLD_S later; the workload goes on until the ensemble is healthy again and 3 s more.
run_scenario() {
  local name=$1 hold=$2 victim="" heal="" wpid i rc=0
  local hist="$out/$name.jsonl" report="$out/$name.report.json" stop="$out/$name.stop"
  wait_healthy 120 || { log "$name: ensemble not healthy before the fault"; return 1; }
  case "$name" in
    follower-cut|follower-partition) victim=$(follower) ;;
    leader-cut|leader-partition|kill9|pause) victim=$(leader) ;;
  esac
  rm -f "$stop"
  "$workload" run --servers "$servers" --prefix "/$name" --history "$hist" \
    --clients 6 --readers-per-member 1 --duration-s 300 --session-timeout-ms 4000 \
    --stop-file "$stop" &
  wpid=$!
  sleep 3
  case "$name" in
    leader-cut|follower-cut)
      log "$name: cutting off zk$victim ($(role "$victim")) for ${hold}s"
      cut "$victim"; sleep "$hold"; heal=$(now_ms); rejoin "$victim" ;;
    leader-partition|follower-partition)
      log "$name: dropping the peer traffic of zk$victim ($(role "$victim")) for ${hold}s"
      partition "$victim" -A; sleep "$hold"; heal=$(now_ms); partition "$victim" -D ;;
    kill9)
      log "$name: kill -9 leader zk$victim, down ${hold}s"
      docker kill -s KILL "$(cid "$victim")" >/dev/null; sleep "$hold"
      heal=$(now_ms); docker start "$(cid "$victim")" >/dev/null ;;
    pause)
      log "$name: freezing leader zk$victim for ${hold}s (sessions: 4 s)"
      docker pause "$(cid "$victim")" >/dev/null; sleep "$hold"
      heal=$(now_ms); docker unpause "$(cid "$victim")" >/dev/null ;;
    rolling)
      for i in 1 2 3; do
        log "$name: restarting zk$i ($(role "$i"))"
        docker restart -t 5 "$(cid "$i")" >/dev/null
        wait_healthy 60 || { log "$name: zk$i did not come back"; rc=1; }
      done ;;
    power-loss)
      log "$name: killing every member, down ${hold}s"
      docker kill -s KILL $(cid 1) $(cid 2) $(cid 3) >/dev/null; sleep "$hold"
      heal=$(now_ms); docker start $(cid 1) $(cid 2) $(cid 3) >/dev/null ;;
  esac
  # The heal is when its command began (docker start of three members takes seconds);
  # a rolling restart heals when its last member is back.
  [ -n "$heal" ] || heal=$(now_ms)
  log "$name: healed"
  wait_healthy 120 || { log "$name: ensemble not healthy after the heal"; rc=1; }
  log "$name: healthy again after $(( $(now_ms) - heal )) ms"
  sleep 3
  touch "$stop"
  wait "$wpid" || { log "$name: workload failed"; rc=1; }
  log "$name: workload stopped; checking"
  if ! "$workload" check --servers "$servers" --prefix "/$name" --history "$hist" \
      --heal-ms "$heal" --max-heal-to-write-s "$max_heal_s" --report "$report" >/dev/null; then
    rc=1
  fi
  summarize "$name" "$report" "$rc"
}

# summarize NAME REPORT RC: one line per scenario (and its violations) in summary.txt;
# fails unless RC is 0 and the report has no violation.
summarize() {
  python3 - "$1" "$2" "$3" <<'EOF' | tee -a "$out/summary.txt"
import json, sys
name, path, rc = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{name:18} FAIL  no report ({e})"); sys.exit()
ok = rc == "0" and not r["violations"]
heal = r["heal_to_first_write_ms"]
heal = f"{heal/1000:.2f}s" if heal is not None else "-"
bound = r["max_heal_to_first_write_ms"]
bound = f" (bound {bound/1000:.0f}s)" if bound is not None else ""
c = r["checked"]
print(f"{name:18} {'ok  ' if ok else 'FAIL'}  ops {r['operations']} (ok {r['ok']}, fail {r['failed']}, "
      f"unknown {r['indeterminate']}); acked creates {r['acked_creates']} on every member; "
      f"linearizable: {c['writes']} writes + {c['writes_unknown']} unknown, "
      f"{c['linearizable_reads']} linearizable reads; session-checked: {c['plain_reads']} plain reads "
      f"({c['ms']:.0f} ms to check); lock holds {r['lock_holds']}; "
      f"queue put {r['queue_puts_acked']} taken {r['queue_taken']} left {r['queue_drained']} "
      f"in-doubt {r['queue_takes_in_doubt']}; heal->first write {heal}{bound}; "
      f"longest write gap {r['longest_write_gap_ms']/1000:.2f}s")
for v in r["violations"]:
    print("    violation: " + v.replace("\n", "\n    "))
EOF
  [ "$3" = 0 ] && python3 -c 'import json,sys; sys.exit(1 if json.load(open(sys.argv[1]))["violations"] else 0)' "$2"
}

# The 5-member ensemble (compose-5.yml) on ports of its own: every member healthy
# within 90 s, then a 5 s workload whose history is checked on every member.
run_five() {
  local i nat=() five_ids=() hist="$out/five.jsonl" report="$out/five.report.json" rc=0 t0 ok=0
  local ps; read -r -a ps <<<"$(free_ports 10)"
  for i in 1 2 3 4 5; do
    export "ZK_PORT_$i=${ps[$((2 * i - 2))]}" "NATIVE_PORT_$i=${ps[$((2 * i - 1))]}"
    nat+=("127.0.0.1:${ps[$((2 * i - 1))]}")
  done
  local five; five=$(IFS=,; echo "${nat[*]}")
  log "five: starting the 5-member ensemble (project ${project}five, native ports $five)"
  t0=$(date +%s)
  five_up=1
  "${compose5[@]}" up -d >/dev/null 2>&1 || "${compose5[@]}" up -d
  for i in 1 2 3 4 5; do five_ids[$i]=$("${compose5[@]}" ps -q "zk$i"); done
  while [ "$(date +%s)" -lt $(( t0 + 90 )) ]; do
    ok=1
    for i in 1 2 3 4 5; do
      [ "$(docker inspect -f '{{.State.Health.Status}}' "${five_ids[$i]}" 2>/dev/null)" = healthy ] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 1
  done
  if [ $ok = 1 ]; then
    log "five: all five members healthy after $(( $(date +%s) - t0 ))s"
    "$workload" run --servers "$five" --prefix /five --history "$hist" --clients 5 \
      --duration-s 5 --session-timeout-ms 4000 || rc=1
    "$workload" check --servers "$five" --prefix /five --history "$hist" \
      --report "$report" >/dev/null || rc=1
  else
    log "five: not every member healthy within 90 s"; rc=1
  fi
  if [ $rc != 0 ]; then
    for i in 1 2 3 4 5; do docker logs "${five_ids[$i]}" >"$out/five-zk$i.log" 2>&1 || true; done
  fi
  summarize five "$report" "$rc"
}

: >"$out/summary.txt"
failed=()
for s in "${scenarios[@]}"; do
  [ "$s" = five ] && continue
  if [ -z "${up:-}" ]; then
    log "starting the ensemble (project $project, native ports $servers)"
    "${compose[@]}" up -d >/dev/null 2>&1 || "${compose[@]}" up -d
    for i in 1 2 3; do ids[$i]=$("${compose[@]}" ps -q "zk$i"); done
    up=1
  fi
  case "$s" in
    leader-cut|follower-cut|leader-partition|follower-partition) hold=5 ;;
    kill9) hold=3 ;;
    pause) hold=7 ;;
    rolling) hold=0 ;;
    power-loss) hold=2 ;;
  esac
  run_scenario "$s" "$hold" || failed+=("$s")
done
if [ ${#failed[@]} -gt 0 ]; then
  for i in 1 2 3; do docker logs "$(cid "$i")" >"$out/zk$i.log" 2>&1 || true; done
fi
if [[ " ${scenarios[*]} " == *" five "* ]]; then
  # Not two ensembles at once on a small machine.
  [ -z "${up:-}" ] || [ "${FAULTS_KEEP:-}" = 1 ] || "${compose[@]}" down -v -t 2 >/dev/null 2>&1 || true
  run_five || failed+=(five)
fi
echo "--- $out/summary.txt"
cat "$out/summary.txt"
log "total $(( $(date +%s) - started ))s"
if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED: ${failed[*]} (member logs in $out)"
  exit 1
fi
log "all scenarios passed"
