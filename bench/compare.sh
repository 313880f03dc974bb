#!/usr/bin/env bash
# zabkeeper vs Apache ZooKeeper 3.8, side by side, same client, same protocol, same run.
#
#   bench/compare.sh                               # full matrix: ~25 min
#   DURATION=3 WARMUP=1 PREWARM_S=5 bench/compare.sh   # a quick look
#   TOPOLOGIES=ensemble OPS="set get" CLIENTS=32 bench/compare.sh
#   OUT=/tmp/cmp.md bench/compare.sh               # where the table goes (default bench/results/)
#   ZABKEEPER_BIN=... BENCH_BIN=... bench/compare.sh   # these binaries, no build
#
# What it does, for each topology (standalone, then a 3-node loopback ensemble):
#  1. starts Apache ZooKeeper (Debian's `zookeeper` package, installed with apt-get if missing;
#     upstream defaults: tickTime 2000, forceSync on, snapCount 100000, -Xmx1000m, log4j at
#     INFO to a file; only clientPortAddress=127.0.0.1 and admin.enableServer=false changed)
#     and zabkeeper (release build, default settings, fsync on), each on free loopback ports
#     with its data in a fresh directory under $TMPDIR (the same disk for both);
#  2. records each one's start-to-serving time (launch to every member answering a create);
#  3. prewarms both for PREWARM_S seconds (ZooKeeper's JIT; zabkeeper gets the same load);
#  4. runs the matrix (OPS x CLIENTS, DURATION s measured after WARMUP s) cell by cell,
#     ZooKeeper then zabkeeper back to back for each cell, with `zabkeeper-bench
#     --protocol zookeeper` against both (client i on member i mod n); server CPU and RSS are
#     summed over all members of the topology;
#  5. reads every member's RSS after the matrix (after RSS_SETTLE_S=10 s idle, so memory
#     freed by the last cell's cleanup is counted as freed), stops both (only the processes
#     it started).
# Then it writes one Markdown table with both servers' figures and the ratios
# zabkeeper/ZooKeeper: throughput, p99, server CPU per request (measured window only), RSS.
#
# Raw JSON lines go next to the table (<OUT>.jsonl). `uptime` is recorded before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PREWARM_S=${PREWARM_S:-20}
OPS=${OPS:-"set get mixed create"}
CLIENTS=${CLIENTS:-"1 8 32"}
PIPELINE=${PIPELINE:-1}
VALUE_SIZE=${VALUE_SIZE:-1024}
TOPOLOGIES=${TOPOLOGIES:-"standalone ensemble"}
RSS_SETTLE_S=${RSS_SETTLE_S:-10}
ZK_HEAP=${ZK_HEAP:-1000m}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/compare-$stamp.md}
mkdir -p "$(dirname "$OUT")"
RAW=$OUT.jsonl
: >"$RAW"

log() { echo "[compare $(date -u +%H:%M:%S)] $*" >&2; }

# ---- Apache ZooKeeper ----
ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -f "$ZK_JAR" ]; then
    log "installing Debian's zookeeper package"
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_="sudo -n"
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y zookeeper >&2 ||
        { $sudo_ apt-get update >&2 && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y zookeeper >&2; }
fi
[ -f "$ZK_JAR" ] || { echo "compare.sh: $ZK_JAR missing after install" >&2; exit 1; }
command -v java >/dev/null || { echo "compare.sh: java not found" >&2; exit 1; }
ZK_CP=$ZK_JAR
for j in /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar; do
    [ -f "$j" ] && ZK_CP+=":$j"
done
zk_version=$(dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || echo unknown)

# ---- zabkeeper ----
# ZABKEEPER_BIN and BENCH_BIN skip the build (e.g. copies, so a rebuild cannot swap them mid-run).
target=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${ZABKEEPER_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
    log "building release binaries"
    cargo build --release -q -p zabkeeper-server --bin zabkeeper -p zabkeeper-bench --bin zabkeeper-bench >&2
fi
ZB=${ZABKEEPER_BIN:-$target/release/zabkeeper}
BENCH=${BENCH_BIN:-$target/release/zabkeeper-bench}

WORK=$(mktemp -d -t zabkeeper-compare.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # n -> n distinct free loopback ports
    python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

now_ms() { date +%s%3N; }

# start_zk TOPO N -> sets SRV (comma list of client addresses), SPIDS (space list)
start_zk() {
    local topo=$1 n=$2 i ports
    read -r -a ports <<<"$(free_ports $((3 * n)))"
    SRV="" SPIDS=""
    cat >"$WORK/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${zookeeper.log.file}
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
    for i in $(seq 1 "$n"); do
        local dir=$WORK/zk-$topo/$i
        mkdir -p "$dir/data"
        {
            echo "tickTime=2000"
            echo "initLimit=10"
            echo "syncLimit=5"
            echo "dataDir=$dir/data"
            echo "clientPort=${ports[$((i - 1))]}"
            echo "clientPortAddress=127.0.0.1"
            echo "admin.enableServer=false"
            if [ "$n" -gt 1 ]; then
                local j
                for j in $(seq 1 "$n"); do
                    echo "server.$j=127.0.0.1:${ports[$((n + j - 1))]}:${ports[$((2 * n + j - 1))]}"
                done
            fi
        } >"$dir/zoo.cfg"
        [ "$n" -gt 1 ] && echo "$i" >"$dir/data/myid"
        java "-Xmx$ZK_HEAP" -Dzookeeper.log.dir="$dir" -Dzookeeper.log.file="$dir/zookeeper.log" \
            -Dlog4j.configuration="file:$WORK/log4j.properties" -cp "$ZK_CP" \
            org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" >"$dir/console.log" 2>&1 &
        PIDS+=($!)
        SPIDS+="${SPIDS:+ }$!"
        SRV+="${SRV:+,}127.0.0.1:${ports[$((i - 1))]}"
    done
}

# start_zb TOPO N -> sets SRV (ZooKeeper-protocol addresses), SPIDS
start_zb() {
    local topo=$1 n=$2 i ports members=""
    read -r -a ports <<<"$(free_ports $((3 * n)))"
    SRV="" SPIDS=""
    for i in $(seq 1 "$n"); do
        members+="${members:+,}$i=127.0.0.1:${ports[$((2 * n + i - 1))]}:${ports[$((n + i - 1))]}"
    done
    for i in $(seq 1 "$n"); do
        local dir=$WORK/zb-$topo/$i args=()
        mkdir -p "$dir/data"
        args=(--port "${ports[$((n + i - 1))]}" --zk-port "${ports[$((i - 1))]}" --admin-port 0 --data-dir "$dir/data")
        [ "$n" -gt 1 ] && args+=(--id "$i" --members "$members")
        "$ZB" "${args[@]}" >"$dir/server.log" 2>&1 &
        PIDS+=($!)
        SPIDS+="${SPIDS:+ }$!"
        SRV+="${SRV:+,}127.0.0.1:${ports[$((i - 1))]}"
    done
}

# wait_serving LAUNCH_MS -> prints ms from launch until every member acknowledged a create
wait_serving() {
    "$BENCH" wait-serving --protocol zookeeper --servers "$SRV" --since-unix-ms "$1" --timeout-s 120
}

rss_each() { # pids -> "a / b / c" MiB
    local p out=""
    for p in $1; do
        out+="${out:+ / }$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$p/status" 2>/dev/null || echo '?')"
    done
    echo "$out"
}
rss_sum() {
    local p s=0 r
    for p in $1; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        s=$((s + r))
    done
    awk -v s="$s" 'BEGIN {printf "%.0f", s / 1024}'
}

dump_logs() {
    local f
    for f in $(find "$WORK" -name '*.log' 2>/dev/null); do
        echo "--- $f" >&2
        tail -n 20 "$f" >&2
    done
}

uptime_before=$(uptime)
log "load before: $uptime_before"
for topo in $TOPOLOGIES; do
    case $topo in standalone) n=1 ;; ensemble) n=3 ;; *) echo "unknown topology $topo" >&2; exit 2 ;; esac
    for server in zookeeper zabkeeper; do
        t0=$(now_ms)
        if [ $server = zookeeper ]; then start_zk "$topo" $n; else start_zb "$topo" $n; fi
        declare "SRV_OF_$server=$SRV" "PIDS_OF_$server=$SPIDS"
        ms=$(wait_serving "$t0") || { echo "compare.sh: $server $topo did not start" >&2; dump_logs; exit 1; }
        log "$server $topo serving after $ms ms (pids $SPIDS), RSS $(rss_each "$SPIDS") MiB"
        echo "{\"server\":\"$server\",\"topology\":\"$topo\",\"start_ms\":$ms,\"rss_start_mib\":$(rss_sum "$SPIDS")}" >>"$RAW"
    done
    if [ "${PREWARM_S%.*}" -gt 0 ] 2>/dev/null; then
        for server in zookeeper zabkeeper; do
            log "prewarm $server $topo ${PREWARM_S}s"
            srv_var=SRV_OF_$server
            "$BENCH" --protocol zookeeper --servers "${!srv_var}" --op mixed --read-ratio 0.5 --clients 8 \
                --duration-s "$PREWARM_S" --warmup-s 0 --value-size "$VALUE_SIZE" >/dev/null ||
                log "prewarm of $server reported an error"
        done
    fi
    for op in $OPS; do
        for c in $CLIENTS; do
            for server in zookeeper zabkeeper; do
                srv_var=SRV_OF_$server pid_var=PIDS_OF_$server
                log "$topo $op $c clients: $server"
                line=$("$BENCH" --protocol zookeeper --servers "${!srv_var}" --op "$op" --clients "$c" \
                    --pipeline "$PIPELINE" --value-size "$VALUE_SIZE" --read-ratio 0.9 \
                    --duration-s "$DURATION" --warmup-s "$WARMUP" --server-pid "${!pid_var// /,}" --json) ||
                    line="{\"op\":\"$op\",\"clients\":$c,\"failed\":true}"
                echo "{\"server\":\"$server\",\"topology\":\"$topo\",\"report\":$line}" >>"$RAW"
            done
        done
    done
    # RSS in steady state: zabkeeper hands freed heap back within ~5 s (memory_trim.rs);
    # the JVM keeps its heap whatever the wait. The instant value right after the last
    # cell is in the log too.
    for server in zookeeper zabkeeper; do
        pid_var=PIDS_OF_$server
        log "$server $topo RSS right after the last cell: $(rss_each "${!pid_var}") MiB"
    done
    sleep "$RSS_SETTLE_S"
    for server in zookeeper zabkeeper; do
        pid_var=PIDS_OF_$server
        log "$server $topo RSS after the matrix: $(rss_each "${!pid_var}") MiB"
        echo "{\"server\":\"$server\",\"topology\":\"$topo\",\"rss_end_mib\":$(rss_sum "${!pid_var}"),\"rss_end_each\":\"$(rss_each "${!pid_var}")\"}" >>"$RAW"
    done
    cleanup
    WORK=$(mktemp -d -t zabkeeper-compare.XXXXXX)
done
uptime_after=$(uptime)
log "load after: $uptime_after"

python3 "$ROOT/bench/compare_table.py" "$RAW" \
    --note "$(date -u +%Y-%m-%d) on $(nproc) cores; ZooKeeper $zk_version (-Xmx$ZK_HEAP), zabkeeper $(git -C "$ROOT" rev-parse --short HEAD); ${WARMUP} s warm-up + ${DURATION} s per cell, ${PREWARM_S} s prewarm, pipeline $PIPELINE, value $VALUE_SIZE B; load before: ${uptime_before#*load average: }; after: ${uptime_after#*load average: }" \
    >"$OUT"
cat "$OUT"
log "table in $OUT, raw lines in $RAW"
