#!/usr/bin/env bash
# zabkeeper's absolute targets from issue 9, each measured here (release build, fresh data
# directories under $TMPDIR, free loopback ports; only processes it started are stopped):
#
#   1. fsync: `zabkeeper-bench fsync-probe` (1 KiB + fdatasync, 2000 times, in the data
#      directory's file system) vs one client, standalone, set 1 KiB p50 (ZooKeeper protocol
#      on our ZooKeeper port, and native);             target: p50 <= 1.5x the fdatasync p50
#   2. start to serving, standalone: launch to a create acknowledged (median of RUNS; polled
#      every 2 ms over the ZooKeeper protocol, whose refusals fail fast, unlike the native
#      client's connect, which backs off between attempts);
#                                                       target: <= 50 ms
#   3. start to serving, 3-node ensemble: launch of all three to a create acknowledged on
#      every member (median of RUNS);                   target: <= 0.5 s
#   4. memory per znode: 1,000 parents x 1,000 children of 100 B (ZNODES_PARENTS x
#      ZNODES_CHILDREN), pipelined creates; RSS / znodes; the newest snapshot's bytes /
#      the znodes it holds;                             targets: <= 250 B, <= 95 B (0.5x ZooKeeper's 190)
#   5. restart of the server holding them (kill -9, relaunch) to serving, and RSS after
#      loading;                                         target: <= 1 s
#   6. (ENSEMBLE_RESTART=1) the same with a 3-node ensemble: populate, kill -9 one follower,
#      relaunch it, time to it serving.
#
#   bench/targets.sh                    # everything, ~3-5 min
#   RUNS=3 ZNODES_PARENTS=100 bench/targets.sh   # smaller
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
ZNODES_PARENTS=${ZNODES_PARENTS:-1000}
ZNODES_CHILDREN=${ZNODES_CHILDREN:-1000}
ENSEMBLE_RESTART=${ENSEMBLE_RESTART:-0}
SET_SECONDS=${SET_SECONDS:-10}

target=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q -p zabkeeper-server --bin zabkeeper -p zabkeeper-bench --bin zabkeeper-bench >&2
ZB=$target/release/zabkeeper
BENCH=$target/release/zabkeeper-bench

WORK=$(mktemp -d -t zabkeeper-targets.XXXXXX)
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

free_ports() {
    python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
now_ms() { date +%s%3N; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print int(($12 + $13) * 1000 / hz)}' "/proc/$1/stat"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
say() { echo "$*"; }

say "machine: $(nproc) cores; load: $(uptime | sed 's/.*load average: //')"

# ---- 1. fsync probe vs one-client set ----
mkdir -p "$WORK/probe"
# The disk is shared and its latency drifts: probe before and after the set runs.
probe=$("$BENCH" fsync-probe --dir "$WORK/probe" --size 1024 --count 1000)
say "$probe"
read -r -a ports <<<"$(free_ports 2)"
"$ZB" --port "${ports[0]}" --zk-port "${ports[1]}" --admin-port 0 --data-dir "$WORK/s1" >"$WORK/s1.log" 2>&1 &
PIDS+=($!)
spid=$!
"$BENCH" wait-serving --protocol zookeeper --servers "127.0.0.1:${ports[1]}" --since-unix-ms "$(now_ms)" >/dev/null
zkset=$("$BENCH" --protocol zookeeper --servers "127.0.0.1:${ports[1]}" --op set --clients 1 \
    --duration-s "$SET_SECONDS" --warmup-s 2 --server-pid "$spid" --json)
natset=$("$BENCH" --protocol native --servers "127.0.0.1:${ports[0]}" --op set --clients 1 \
    --duration-s "$SET_SECONDS" --warmup-s 2 --server-pid "$spid" --json)
stop_all
probe2=$("$BENCH" fsync-probe --dir "$WORK/probe" --size 1024 --count 1000)
say "$probe2"
python3 - "$probe
$probe2" "$zkset" "$natset" <<'EOF'
import json, re, sys
probe, zk, nat = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
p50s = {}
for m in re.finditer(r"fsync-probe (\w+) .*?p50 (\d+) us", probe):
    p50s.setdefault(m.group(1), []).append(int(m.group(2)))
p50 = {k: sum(v) / len(v) for k, v in p50s.items()}
print(f"fdatasync p50, mean of the two probes: append {p50['append']:.0f} us, preallocated {p50['prealloc']:.0f} us")
for name, r in (("zookeeper protocol", zk), ("native", nat)):
    print(f"set 1 KiB, 1 client, standalone ({name}): {r['ops_per_s']:.0f} ops/s, p50 {r['p50_us']} us, "
          f"p99 {r['p99_us']} us; p50 / fdatasync p50: {r['p50_us'] / p50['append']:.2f}x (append), "
          f"{r['p50_us'] / p50['prealloc']:.2f}x (preallocated)  [target <= 1.5x]")
EOF

# ---- 2. standalone start ----
times=() cpus=()
for r in $(seq 1 "$RUNS"); do
    read -r -a ports <<<"$(free_ports 2)"
    t0=$(now_ms)
    "$ZB" --port "${ports[0]}" --zk-port "${ports[1]}" --admin-port 0 --data-dir "$WORK/start-$r" >"$WORK/start-$r.log" 2>&1 &
    PIDS+=($!)
    times+=("$("$BENCH" wait-serving --protocol zookeeper --servers "127.0.0.1:${ports[1]}" --since-unix-ms "$t0")")
    cpus+=("$(cpu_ms $!)")
    stop_all
done
say "start to serving, standalone (ms, $RUNS runs): ${times[*]}; median $(printf '%s\n' "${times[@]}" | median)  [target <= 50]" \
    "(server CPU until then, ms: ${cpus[*]})"

# ---- 3. ensemble start ----
start_ensemble() { # dir -> sets EPIDS, ESRV (ZooKeeper-protocol addresses)
    local dir=$1 i members="" p
    read -r -a p <<<"$(free_ports 9)"
    for i in 1 2 3; do members+="${members:+,}$i=127.0.0.1:${p[$((5 + i))]}:${p[$((i - 1))]}"; done
    EPIDS=() ESRV="" EARGS=()
    for i in 1 2 3; do
        mkdir -p "$dir/$i"
        EARGS[$i]="--id $i --members $members --port ${p[$((i - 1))]} --zk-port ${p[$((2 + i))]} --admin-port 0 --data-dir $dir/$i"
        # shellcheck disable=SC2086
        "$ZB" ${EARGS[$i]} >>"$dir/$i.log" 2>&1 &
        PIDS+=($!)
        EPIDS[$i]=$!
        ESRV+="${ESRV:+,}127.0.0.1:${p[$((2 + i))]}"
    done
}
times=()
for r in $(seq 1 "$RUNS"); do
    t0=$(now_ms)
    start_ensemble "$WORK/ens-$r"
    times+=("$("$BENCH" wait-serving --protocol zookeeper --servers "$ESRV" --since-unix-ms "$t0")")
    stop_all
done
say "start to serving, 3-node ensemble (ms, $RUNS runs): ${times[*]}; median $(printf '%s\n' "${times[@]}" | median)  [target <= 500]"

# ---- 4. memory per znode, 5. restart ----
read -r -a ports <<<"$(free_ports 2)"
"$ZB" --port "${ports[0]}" --zk-port "${ports[1]}" --admin-port 0 --data-dir "$WORK/big" >"$WORK/big.log" 2>&1 &
PIDS+=($!)
spid=$!
"$BENCH" wait-serving --protocol zookeeper --servers "127.0.0.1:${ports[1]}" --since-unix-ms "$(now_ms)" >/dev/null
rss0=$(rss_kib "$spid")
say "$("$BENCH" populate --servers "127.0.0.1:${ports[0]}" --parents "$ZNODES_PARENTS" --children "$ZNODES_CHILDREN" --value-size 100)"
rss1=$(rss_kib "$spid")
znodes=$((ZNODES_PARENTS * ZNODES_CHILDREN + ZNODES_PARENTS + 2))
snap=$(ls -1 "$WORK/big/snapshot"/snapshot.* 2>/dev/null | sort | tail -1 || true)
python3 - "$rss0" "$rss1" "$znodes" "$snap" <<'EOF'
import os, sys
rss0, rss1, n, snap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"memory: {n} znodes of 100 B: RSS {rss1 / 1024:.0f} MiB = {rss1 * 1024 / n:.0f} B per znode "
      f"({(rss1 - rss0) * 1024 / n:.0f} B above the empty server's {rss0 / 1024:.0f} MiB)  [target <= 250 B]")
if snap:
    zxid = int(os.path.basename(snap).split(".")[1], 16) & 0xFFFFFFFF
    size = os.path.getsize(snap)
    print(f"snapshot: {os.path.basename(snap)} {size / 1e6:.1f} MB, ~{zxid} txns in it: "
          f"{size / zxid:.0f} B per znode  [target <= 95 B = 0.5x ZooKeeper's 190 B]")
else:
    print("snapshot: none taken (fewer txns than snap_count)")
EOF
kill -9 "$spid"
wait "$spid" 2>/dev/null || true
PIDS=()
t0=$(now_ms)
"$ZB" --port "${ports[0]}" --zk-port "${ports[1]}" --admin-port 0 --data-dir "$WORK/big" >>"$WORK/big.log" 2>&1 &
PIDS+=($!)
spid=$!
ms=$("$BENCH" wait-serving --protocol zookeeper --servers "127.0.0.1:${ports[1]}" --since-unix-ms "$t0" --timeout-s 120)
say "restart (kill -9, relaunch) of a standalone server holding $znodes znodes: serving after $ms ms," \
    "RSS after loading $(($(rss_kib "$spid") / 1024)) MiB = $(($(rss_kib "$spid") * 1024 / znodes)) B per znode  [target <= 1000 ms]"
stop_all

if [ "$ENSEMBLE_RESTART" = 1 ]; then
    start_ensemble "$WORK/ensbig"
    "$BENCH" wait-serving --protocol zookeeper --servers "$ESRV" --since-unix-ms "$(now_ms)" >/dev/null
    say "ensemble $("$BENCH" populate --protocol zookeeper --servers "$ESRV" --parents "$ZNODES_PARENTS" --children "$ZNODES_CHILDREN" --value-size 100 --clients 6)"
    # Member 1 is restarted; kill -9 and relaunch with the same arguments.
    kill -9 "${EPIDS[1]}"
    wait "${EPIDS[1]}" 2>/dev/null || true
    t0=$(now_ms)
    # shellcheck disable=SC2086
    "$ZB" ${EARGS[1]} >>"$WORK/ensbig/1.log" 2>&1 &
    PIDS+=($!)
    ms=$("$BENCH" wait-serving --protocol zookeeper --servers "${ESRV%%,*}" --since-unix-ms "$t0" --timeout-s 120)
    say "restart (kill -9, relaunch) of ensemble member 1 holding $znodes znodes: serving after $ms ms  [target <= 1000 ms]"
    stop_all
fi
say "load after: $(uptime | sed 's/.*load average: //')"
