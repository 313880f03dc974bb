#!/usr/bin/env bash
# Apache ZooKeeper's own CLI (zkCli.sh / ZooKeeperMain) completes a scripted session against
# zabkeeper, and `echo ruok | nc` / `mntr` answer. Exit 77 if zkCli or nc is missing.
set -uo pipefail
cd "$(dirname "$0")"
[ -f /usr/share/java/zookeeper.jar ] || { echo "SKIP: ZooKeeper jars missing"; exit 77; }
command -v nc >/dev/null || { echo "SKIP: nc missing"; exit 77; }

port=$(python3 -c 'import zkserver; print(zkserver.free_port())')
native=$(python3 -c 'import zkserver; print(zkserver.free_port())')
dir=$(mktemp -d)
"${ZABKEEPER_BIN:?}" --data-dir "$dir" --port "$native" --zk-port "$port" --admin-port 0 --tick-ms 100 2>"$dir/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
python3 -c "import zkserver; zkserver.wait_port($port)" || exit 1

fail() { echo "FAIL: $*"; exit 1; }
[ "$(echo ruok | nc -q 1 127.0.0.1 "$port" 2>/dev/null || echo ruok | nc 127.0.0.1 "$port")" = imok ] || fail "ruok"
echo mntr | nc -q 1 127.0.0.1 "$port" 2>/dev/null | awk -F'\t' 'NF != 2 { bad = 1 } END { exit bad }' || fail "mntr lines are not key<TAB>value"

cli() {
    java -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar \
        -Dlog4j.configuration=file:/dev/null org.apache.zookeeper.ZooKeeperMain -server "127.0.0.1:$port" "$@" 2>&1
}
cli create /cli hello >/dev/null
cli create -s /cli/seq- >/dev/null
out=$(cli create -e /cli/eph)
echo "$out" | grep -q "Created /cli/eph" || fail "create -e: $out"
cli set /cli world >/dev/null
out=$(cli get /cli)
echo "$out" | grep -qx world || fail "get /cli: $out"
out=$(cli ls /cli)
echo "$out" | grep -q "seq-0000000000" || fail "ls /cli: $out"
# A one-shot zkCli exits without closing its session: the ephemeral lives until the session
# expires (timeout capped at 20 ticks = 2 s here), as on ZooKeeper.
sleep 3
out=$(cli ls /cli)
echo "$out" | grep -q "eph" && fail "ephemeral survived its expired session: $out"
out=$(cli stat /cli)
echo "$out" | grep -q "dataVersion = 1" || fail "stat /cli: $out"
out=$(cli create /cli x)
echo "$out" | grep -q "Node already exists" || fail "duplicate create: $out"
cli deleteall /cli >/dev/null
out=$(cli ls /)
echo "$out" | grep -q "cli" && fail "deleteall: $out"
echo "zkCli session ok"
