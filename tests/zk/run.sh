#!/usr/bin/env bash
# ZooKeeper-compatibility tests that need outside software: Kazoo (recipes, expiry, restart),
# the differential run against Apache ZooKeeper 3.8, zkCli.sh, and `echo ruok | nc`.
# The Rust wire tests (server/tests/zk_*.rs) run with `cargo test -p zabkeeper-server`.
#
# Usage: tests/zk/run.sh            (skips, loudly, what cannot run here)
#        ZK_COMPAT_REQUIRED=1 tests/zk/run.sh   (CI: a missing dependency is a failure)
# Dependencies: scripts/install-test-deps.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
# ZABKEEPER_BIN: the server binary to test (scripts/test passes the one its
# `cargo test --no-run` built); unset, this script builds target/debug/zabkeeper.
if [ -z "${ZABKEEPER_BIN:-}" ]; then
    cargo build -q -p zabkeeper-server --bin zabkeeper || exit 1
    export ZABKEEPER_BIN=$ROOT/target/debug/zabkeeper
fi
required=${ZK_COMPAT_REQUIRED:-0}
status=0
skipped=0


run() { # name, command...
    local name=$1; shift
    echo "=== $name"
    "$@"
    local rc=$?
    if [ $rc -eq 77 ]; then
        echo "=== $name: SKIPPED (dependency missing)"
        skipped=1
    elif [ $rc -ne 0 ]; then
        echo "=== $name: FAILED ($rc)"
        status=1
    else
        echo "=== $name: ok"
    fi
}

run kazoo python3 tests/zk/test_kazoo.py
run kazoo-ensemble python3 tests/zk/test_kazoo_ensemble.py
run differential python3 tests/zk/differential.py
run zkcli bash tests/zk/zkcli.sh

if [ $skipped -ne 0 ] && [ "$required" = 1 ]; then
    echo "some ZooKeeper-compatibility tests were skipped and ZK_COMPAT_REQUIRED=1"
    status=1
fi
exit $status
