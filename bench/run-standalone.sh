#!/usr/bin/env bash
# Runs the standalone benchmark matrix against a fresh zabkeeper server and prints one
# Markdown table with the ZooKeeper anchor's columns (shared/anchors/zookeeper-3.8-loopback.md).
#
#   bench/run-standalone.sh                 # 10 s per cell, 2 s warm-up
#   DURATION=3 WARMUP=1 bench/run-standalone.sh
#   OPS="set get" CLIENTS="1 32" PIPELINE=8 bench/run-standalone.sh
#   ZABKEEPER_BIN=/path/to/zabkeeper bench/run-standalone.sh   # use that server binary
#
# Builds release binaries, starts `zabkeeper --port <free> --data-dir <temp>`, runs every
# (op, clients) cell with `zabkeeper-bench --server-pid` (server CPU over each whole
# invocation, RSS after it), then stops only the server it started and removes the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
OPS=${OPS:-"create set get mixed"}
CLIENTS=${CLIENTS:-"1 8 32"}
PIPELINE=${PIPELINE:-1}
VALUE_SIZE=${VALUE_SIZE:-1024}

target=${CARGO_TARGET_DIR:-target}
bench_bin=$target/release/zabkeeper-bench
if [[ -n "${ZABKEEPER_BIN:-}" ]]; then
    server_bin=$ZABKEEPER_BIN
    cargo build --release -q -p zabkeeper-bench --bin zabkeeper-bench >&2
else
    server_bin=$target/release/zabkeeper
    cargo build --release -q -p zabkeeper-server --bin zabkeeper -p zabkeeper-bench --bin zabkeeper-bench >&2
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d -t zabkeeper-bench.XXXXXX)
"$server_bin" --port "$port" --admin-port 0 --data-dir "$data" >"$data.log" 2>&1 &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    rm -rf "$data" "$data.log"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "zabkeeper exited before accepting; its log:" >&2
        cat "$data.log" >&2
        exit 1
    fi
    sleep 0.1
done
start_rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")

echo "zabkeeper standalone on 127.0.0.1:$port (pid $server_pid, RSS after start ${start_rss} MiB);" \
     "${WARMUP} s warm-up + ${DURATION} s per cell, pipeline $PIPELINE, value $VALUE_SIZE B"
echo
"$bench_bin" --markdown-header
for op in $OPS; do
    for c in $CLIENTS; do
        "$bench_bin" --servers "127.0.0.1:$port" --op "$op" --clients "$c" --pipeline "$PIPELINE" \
            --value-size "$VALUE_SIZE" --read-ratio 0.9 --duration-s "$DURATION" --warmup-s "$WARMUP" \
            --server-pid "$server_pid" --markdown standalone
    done
done
