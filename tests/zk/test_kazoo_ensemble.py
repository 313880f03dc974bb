"""Kazoo against a 3-member zabkeeper ensemble through the ZooKeeper port of each member:
writes through one member are read through another, the client's member is killed and
Kazoo moves its session (ephemeral kept, lock still held), and the session's ephemeral
goes once the session is closed. Exit 77 (skip) without kazoo, like test_kazoo.py.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkserver import free_port, wait_port, zabkeeper_bin  # noqa: E402

try:
    from kazoo.client import KazooClient, KazooState
    from kazoo.exceptions import ConnectionLoss
except ImportError:  # pragma: no cover
    print("SKIP: kazoo is not installed (run scripts/install-test-deps)")
    sys.exit(77)


def wait_for(pred, timeout=15.0, what="condition"):
    """Polls `pred` until it holds. A ConnectionLoss while polling means "not yet": a
    client that just reconnected may reach a member still joining the new epoch, which
    refuses it, and Kazoo fails the request in flight before it tries the next one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except ConnectionLoss:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


class Ensemble:
    def __init__(self, n=3):
        self.dir = tempfile.mkdtemp(prefix="zk-ensemble-")
        self.peer = [free_port() for _ in range(n)]
        self.native = [free_port() for _ in range(n)]
        self.zk = [free_port() for _ in range(n)]
        self.spec = ",".join(f"{i + 1}=127.0.0.1:{self.peer[i]}:{self.native[i]}" for i in range(n))
        self.procs = [None] * n
        for i in range(n):
            self.start(i)

    def log_path(self, i):
        return os.path.join(self.dir, f"{i + 1}.log")

    def start(self, i):
        # Each member logs (info) to a file in the ensemble's directory; a failing test
        # prints their tails (dump_logs), since CI keeps nothing else.
        log = open(self.log_path(i), "ab")
        self.procs[i] = subprocess.Popen(
            [zabkeeper_bin(), "--id", str(i + 1), "--members", self.spec, "--zk-port", str(self.zk[i]), "--admin-port", "0",
             "--tick-ms", "200", "--data-dir", os.path.join(self.dir, str(i + 1))],
            stdout=subprocess.DEVNULL, stderr=log,
            env=dict(os.environ, RUST_LOG=os.environ.get("ZK_TEST_RUST_LOG", "info")))
        log.close()
        wait_port(self.zk[i])

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def hosts(self, i=None):
        idx = range(len(self.zk)) if i is None else [i]
        return ",".join(f"127.0.0.1:{self.zk[j]}" for j in idx)

    def dump_logs(self, lines=60):
        for i in range(len(self.procs)):
            try:
                with open(self.log_path(i), errors="replace") as f:
                    tail = f.readlines()[-lines:]
            except OSError:
                continue
            sys.stderr.write(f"--- member {i + 1} log (last {len(tail)} lines) ---\n{''.join(tail)}")

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait()
        # Three preallocated log segments (~190 MB) per run: leaving them filled the
        # disk after a few hundred runs.
        shutil.rmtree(self.dir, ignore_errors=True)


class KazooEnsembleTest(unittest.TestCase):
    def setUp(self):
        self.ens = Ensemble(3)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        self.ens.stop()

    def client(self, hosts, timeout=4.0):
        c = KazooClient(hosts=hosts, timeout=timeout, connection_retry={"max_tries": -1, "delay": 0.05,
                                                                          "max_delay": 0.5})
        # Members refuse clients until they have joined the epoch: retry the start.
        deadline = time.time() + 20
        while True:
            try:
                c.start(timeout=5)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.clients.append(c)
        return c

    def test_replication_failover_and_session_move(self):
        self.timeline = []
        try:
            self.replication_failover_and_session_move()
        except BaseException:
            self.ens.dump_logs()
            sys.stderr.write(f"mover's states (s within the minute): {self.timeline}\n")
            raise

    def replication_failover_and_session_move(self):
        writer = self.client(self.ens.hosts(0))
        writer.create("/cfg", b"v1")
        reader = self.client(self.ens.hosts(1))
        reader.sync("/cfg")
        self.assertEqual(reader.get("/cfg")[0], b"v1")

        # A client that knows every member; find which one it is on and kill it.
        mover = self.client(self.ens.hosts())
        mover.create("/owner", b"", ephemeral=True)
        lock = mover.Lock("/lock", "mover")
        self.assertTrue(lock.acquire(timeout=10))
        port = int(mover._connection._socket.getpeername()[1])
        victim = self.ens.zk.index(port)
        session_id = mover.client_id[0]
        states = []
        # With the time of each change (seconds within the minute, as in the members'
        # logs), printed if the test fails.
        def changed(s):
            states.append(s)
            self.timeline.append((round(time.time() % 60, 3), str(s)))
        mover.add_listener(changed)
        self.ens.kill(victim)
        wait_for(lambda: KazooState.SUSPENDED in states, what="suspended")
        wait_for(lambda: mover.connected and mover.exists("/owner") is not None,
                 what=lambda: f"session moved (victim member {victim + 1}, states {states})")
        self.assertNotIn(KazooState.LOST, states, "the session survived its member's death")
        other = self.client(self.ens.hosts((victim + 1) % 3))
        other.sync("/owner")
        # The same session owns it (client_id itself is None while Kazoo reconnects,
        # which it may do again if its first new member was still joining the epoch).
        self.assertEqual(other.exists("/owner").ephemeralOwner, session_id)
        self.assertTrue(lock.is_acquired)

        # Writes go on with two members; the restarted one catches up.
        mover.retry(mover.set, "/cfg", b"v2")
        self.ens.start(victim)
        back = self.client(self.ens.hosts(victim))
        back.sync("/cfg")
        self.assertEqual(back.get("/cfg")[0], b"v2")

        # Closing the session removes its ephemeral everywhere.
        lock.release()
        mover.stop()
        other.sync("/owner")
        wait_for(lambda: other.exists("/owner") is None, what="ephemeral removed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
