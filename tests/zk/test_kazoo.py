"""Kazoo (an unmodified ZooKeeper client) and its recipes against zabkeeper's ZooKeeper port.

Run: python3 tests/zk/test_kazoo.py (needs kazoo: scripts/install-test-deps; the zabkeeper
binary from target/debug or $ZABKEEPER_BIN). Without kazoo it exits 77 with a message, and
tests/zk/run.sh turns that into a failure when ZK_COMPAT_REQUIRED=1 (CI).
"""
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkserver import Zabkeeper, four_letter  # noqa: E402

try:
    from kazoo.client import KazooClient, KazooState
    from kazoo.exceptions import (BadVersionError, LockTimeout, NodeExistsError, NoNodeError,
                                  NotEmptyError)
    from kazoo.recipe.watchers import ChildrenWatch, DataWatch
except ImportError:  # pragma: no cover
    print("SKIP: kazoo is not installed (run scripts/install-test-deps)")
    sys.exit(77)


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class KazooTest(unittest.TestCase):
    def setUp(self):
        self.server = Zabkeeper(tick_ms=100)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        self.server.close()

    def client(self, timeout=2.0):
        c = KazooClient(hosts=self.server.hosts, timeout=timeout)
        c.start(timeout=10)
        self.clients.append(c)
        return c

    def test_crud_and_errors(self):
        zk = self.client()
        self.assertEqual(zk.create("/a", b"one"), "/a")
        with self.assertRaises(NodeExistsError):
            zk.create("/a", b"")
        data, stat = zk.get("/a")
        self.assertEqual((data, stat.version, stat.data_length), (b"one", 0, 3))
        stat = zk.set("/a", b"two", version=0)
        self.assertEqual(stat.version, 1)
        with self.assertRaises(BadVersionError):
            zk.set("/a", b"x", version=0)
        zk.ensure_path("/a/b/c")
        self.assertEqual(zk.get_children("/a"), ["b"])
        with self.assertRaises(NotEmptyError):
            zk.delete("/a")
        seq = [zk.create("/a/s-", sequence=True) for _ in range(3)]
        self.assertEqual(seq, ["/a/s-0000000001", "/a/s-0000000002", "/a/s-0000000003"])
        self.assertIsNone(zk.exists("/nope"))
        with self.assertRaises(NoNodeError):
            zk.get("/nope")
        path, stat = zk.create("/e", b"", ephemeral=True, include_data=True)
        self.assertEqual(stat.ephemeralOwner, zk.client_id[0])
        tx = zk.transaction()
        tx.create("/t1", b"1")
        tx.check("/a", 1)
        tx.set_data("/a", b"three")
        self.assertEqual(tx.commit()[0], "/t1")
        tx = zk.transaction()
        tx.create("/t2")
        tx.delete("/missing")
        results = tx.commit()
        self.assertIsInstance(results[1], NoNodeError)
        self.assertIsNone(zk.exists("/t2"), "a failed transaction applies nothing")
        zk.delete("/a", recursive=True)
        self.assertIsNone(zk.exists("/a"))
        self.assertEqual(four_letter(self.server.port, "ruok"), "imok")

    def test_data_and_children_watch(self):
        zk = self.client()
        other = self.client()
        zk.ensure_path("/w")
        seen_data, seen_children = [], []
        DataWatch(zk, "/w", lambda data, stat: seen_data.append(data))
        ChildrenWatch(zk, "/w", lambda children: seen_children.append(sorted(children)))
        wait_for(lambda: seen_data and seen_children, what="initial watch calls")
        other.set("/w", b"v1")
        other.create("/w/x")
        other.create("/w/y")
        other.set("/w", b"v2")
        wait_for(lambda: seen_data[-1] == b"v2", what="data watch")
        wait_for(lambda: seen_children[-1] == ["x", "y"], what="children watch")
        self.assertIn(b"v1", seen_data)

    def test_lock_election_queue(self):
        a, b = self.client(), self.client()
        lock_a, lock_b = a.Lock("/lock", "a"), b.Lock("/lock", "b")
        self.assertTrue(lock_a.acquire(timeout=5))
        with self.assertRaises(LockTimeout):
            lock_b.acquire(timeout=0.3)
        got = threading.Event()
        t = threading.Thread(target=lambda: (lock_b.acquire(timeout=10), got.set()))
        t.start()
        time.sleep(0.2)
        self.assertFalse(got.is_set())
        lock_a.release()
        t.join(10)
        self.assertTrue(got.is_set(), "b gets the lock once a releases it")
        self.assertEqual(lock_b.contenders(), ["b"])
        lock_b.release()

        leaders = []
        stop = threading.Event()

        def run(name, client):
            client.Election("/election", name).run(lambda: (leaders.append(name), stop.wait(10)))

        ta = threading.Thread(target=run, args=("a", a), daemon=True)
        ta.start()
        wait_for(lambda: leaders == ["a"], what="a elected")
        tb = threading.Thread(target=run, args=("b", b), daemon=True)
        tb.start()
        time.sleep(0.3)
        self.assertEqual(leaders, ["a"], "only one leader at a time")
        self.assertEqual(sorted(b.Election("/election").contenders()), ["a", "b"])
        stop.set()
        ta.join(10)
        tb.join(10)

        q = a.Queue("/queue")
        for item in (b"1", b"2", b"3"):
            q.put(item)
        self.assertEqual(len(q), 3)
        self.assertEqual([b.Queue("/queue").get() for _ in range(3)], [b"1", b"2", b"3"])
        self.assertIsNone(q.get())

    def test_session_expiry(self):
        zk = self.client(timeout=1.0)
        zk.create("/mine", ephemeral=True)
        lock = zk.Lock("/xlock", "old")
        self.assertTrue(lock.acquire(timeout=5))
        states = []
        zk.add_listener(states.append)
        old_session = zk.client_id
        # Another client resumes the session and closes it: the session ends at the server.
        thief = KazooClient(hosts=self.server.hosts, client_id=old_session, timeout=1.0)
        thief.start(timeout=10)
        thief.stop()
        thief.close()
        wait_for(lambda: KazooState.LOST in states, what="LOST")
        wait_for(lambda: zk.connected and zk.client_id != old_session, what="a new session")
        self.assertIsNone(zk.exists("/mine"), "the expired session's ephemeral is gone")
        other = self.client()
        self.assertTrue(other.Lock("/xlock", "new").acquire(timeout=5), "the lock died with the session")

    def test_server_restart_keeps_session_and_data(self):
        self.restart_case(signal.SIGTERM)

    def test_server_kill9_keeps_acknowledged_writes_and_session(self):
        self.restart_case(signal.SIGKILL)

    def restart_case(self, sig):
        zk = self.client(timeout=4.0)
        zk.create("/durable", b"kept")
        zk.create("/eph", ephemeral=True)
        session = zk.client_id
        seen = []
        DataWatch(zk, "/durable", lambda data, stat: seen.append(data))
        wait_for(lambda: seen == [b"kept"], what="data watch")
        self.server.restart(sig)
        wait_for(lambda: zk.connected, timeout=15, what="reconnect")
        self.assertEqual(zk.client_id, session, "the session survived the restart")
        self.assertEqual(zk.get("/durable")[0], b"kept")
        self.assertIsNotNone(zk.exists("/eph"))
        other = self.client()
        other.set("/durable", b"after")
        wait_for(lambda: seen[-1] == b"after", what="watch restored by setWatches after restart")


if __name__ == "__main__":
    unittest.main(verbosity=2)
