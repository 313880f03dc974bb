"""Differential test: the same operation sequences against Apache ZooKeeper 3.8 and zabkeeper,
through Kazoo, compared after dropping what must differ (zxids, times, session ids).

Covers errors (exception types = ZooKeeper error codes), Stat fields, sequential names, watch
events, multi results, ACLs, containers/TTL, 4lw formats. Exits 77 when ZooKeeper's jars or
kazoo are missing (tests/zk/run.sh decides whether that is a failure).
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkserver import Zabkeeper, ZooKeeper, four_letter, zookeeper_classpath  # noqa: E402

try:
    from kazoo.client import KazooClient
    from kazoo.security import make_acl
    from kazoo.security import ACL as KACL, Id as KId
except ImportError:
    print("SKIP: kazoo is not installed (run scripts/install-test-deps)")
    sys.exit(77)
if zookeeper_classpath() is None:
    print("SKIP: Apache ZooKeeper jars are not installed (run scripts/install-test-deps)")
    sys.exit(77)


def stat(s):
    """The Stat fields that must agree (zxids and times differ between servers)."""
    if s is None:
        return None
    return {"version": s.version, "cversion": s.cversion, "aversion": s.aversion,
            "dataLength": s.dataLength, "numChildren": s.numChildren,
            "ephemeral": s.ephemeralOwner != 0, "czxid==mzxid": s.czxid == s.mzxid,
            "pzxid>=czxid": s.pzxid >= s.czxid}


def outcome(fn):
    try:
        r = fn()
    except Exception as e:  # the exception class is the ZooKeeper error code
        return ("error", type(e).__name__)
    return ("ok", norm(r))


def norm(r):
    if hasattr(r, "czxid"):
        return stat(r)
    if isinstance(r, tuple):
        return tuple(norm(x) for x in r)
    if isinstance(r, list):
        return [norm(x) for x in r]
    if isinstance(r, Exception):
        return type(r).__name__
    return r


def scenario(hosts, port):
    out = []
    log = lambda name, value: out.append((name, value))  # noqa: E731
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=30)
    other = KazooClient(hosts=hosts, timeout=10)
    other.start(timeout=30)
    events = []
    lock = threading.Lock()

    def watcher(ev):
        with lock:
            events.append((ev.type, ev.path))

    log("create", outcome(lambda: zk.create("/d", b"root")))
    log("create dup", outcome(lambda: zk.create("/d", b"")))
    log("create no parent", outcome(lambda: zk.create("/nope/x", b"")))
    log("create2", outcome(lambda: zk.create("/d/a", b"abc", include_data=True)))
    log("seq", [outcome(lambda: zk.create("/d/s-", b"", sequence=True)) for _ in range(3)])
    log("eph seq", outcome(lambda: zk.create("/d/e-", b"", ephemeral=True, sequence=True)))
    log("child of eph", outcome(lambda: zk.create("/d/e-0000000003/x", b"")))
    log("exists", outcome(lambda: zk.exists("/d")))
    log("exists missing", outcome(lambda: zk.exists("/d/missing")))
    log("get", outcome(lambda: zk.get("/d/a")))
    log("get missing", outcome(lambda: zk.get("/d/missing")))
    log("set", outcome(lambda: zk.set("/d/a", b"xy", version=0)))
    log("set bad version", outcome(lambda: zk.set("/d/a", b"xy", version=0)))
    log("set missing", outcome(lambda: zk.set("/d/missing", b"")))
    log("children", outcome(lambda: sorted(zk.get_children("/d"))))
    log("children2", outcome(lambda: (sorted(zk.get_children("/d", include_data=True)[0]),
                                      stat(zk.get_children("/d", include_data=True)[1]))))
    log("children missing", outcome(lambda: zk.get_children("/d/missing")))
    log("delete not empty", outcome(lambda: zk.delete("/d")))
    log("delete bad version", outcome(lambda: zk.delete("/d/a", version=7)))
    log("get acl", outcome(lambda: zk.get_acls("/d/a")))
    acl = [make_acl("world", "anyone", read=True, write=True, admin=True)]  # ADMIN kept: kept so the later steps may still setACL
    log("set acl", outcome(lambda: zk.set_acls("/d/a", acl)))
    log("set acl bad version", outcome(lambda: zk.set_acls("/d/a", acl, version=0)))
    log("get acl after", outcome(lambda: [(a.perms, a.id.scheme, a.id.id) for a in zk.get_acls("/d/a")[0]]))
    log("empty acl", outcome(lambda: zk.create("/d/noacl", b"", acl=[])))
    log("sync", outcome(lambda: zk.sync("/d")))
    log("all children number", outcome(lambda: zk.get_children("/d") and None))

    # Watches: data, child, exists; fired by the other session.
    zk.get("/d/a", watch=watcher)
    zk.get_children("/d", watch=watcher)
    zk.exists("/d/new", watch=watcher)
    other.set("/d/a", b"changed")
    other.create("/d/new", b"")
    other.delete("/d/new")
    deadline = time.time() + 5
    while len(events) < 3 and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    with lock:
        log("events", sorted(events))

    # Multi.
    def tx_ok():
        t = zk.transaction()
        t.create("/d/m1", b"1")
        t.check("/d/a", 2)
        t.set_data("/d/m1", b"2")
        t.delete("/d/m1")
        return t.commit()
    log("multi ok", outcome(tx_ok))

    def tx_fail():
        t = zk.transaction()
        t.create("/d/m2", b"")
        t.set_data("/d/missing", b"")
        t.create("/d/m3", b"")
        return t.commit()
    log("multi fail", outcome(tx_fail))
    log("multi applied nothing", outcome(lambda: zk.exists("/d/m2")))

    # Containers and TTL nodes.
    log("container", outcome(lambda: zk.create("/d/c", b"", container=True)))
    log("ttl", outcome(lambda: zk.create("/d/t", b"", ttl=60000, include_data=True)))
    log("ttl zero", outcome(lambda: zk.create("/d/t0", b"", ttl=0)))

    # Four-letter words: the keys and fixed lines monitoring scripts read.
    mntr = dict(l.split("\t", 1) for l in four_letter(port, "mntr").splitlines() if "\t" in l)
    log("mntr keys", sorted(k for k in ["zk_version", "zk_server_state", "zk_znode_count",
                                          "zk_watch_count", "zk_ephemerals_count",
                                          "zk_num_alive_connections", "zk_packets_received",
                                          "zk_approximate_data_size", "zk_outstanding_requests"]
                            if k in mntr))
    log("mntr state", mntr.get("zk_server_state"))
    log("ruok", four_letter(port, "ruok"))
    srvr = four_letter(port, "srvr").splitlines()
    log("srvr keys", [l.split(":")[0] for l in srvr])
    log("srvr mode", [l for l in srvr if l.startswith("Mode:")])
    log("isro", four_letter(port, "isro"))
    log("wchs", four_letter(port, "wchs").splitlines()[0].split(" ", 1)[1].split(" ", 2)[:2])

    zk.delete("/d", recursive=True)
    log("gone", outcome(lambda: zk.exists("/d")))
    zk.stop()
    other.stop()
    acl_scenario(hosts, log)
    quota_scenario(hosts, log)
    return out


def quota_scenario(hosts, log):
    """Quotas made as zkCli's setquota makes them (plain nodes under /zookeeper/quota):
    the usage the server keeps in zookeeper_stats, and hard limits refused with
    QuotaExceeded (ZooKeeper runs with zookeeper.enforceQuota=true; zabkeeper always
    enforces hard limits)."""
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=30)
    stats = lambda: zk.get("/zookeeper/quota/q/zookeeper_stats")[0].decode()  # noqa: E731
    zk.create("/q", b"12345")
    zk.create("/q/a", b"ab")
    zk.create("/zookeeper/quota/q", b"")
    zk.create("/zookeeper/quota/q/zookeeper_limits", b"count=-1,bytes=-1=;byteHardLimit=20;countHardLimit=4")
    zk.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    log("quota stats recomputed", outcome(stats))
    log("quota create within", outcome(lambda: zk.create("/q/b", b"xyz")))
    log("quota set within", outcome(lambda: zk.set("/q/a", b"abcdef") and None))
    log("quota stats after", outcome(stats))
    log("quota create at limit", outcome(lambda: zk.create("/q/c", b"")))
    log("quota create over count", outcome(lambda: zk.create("/q/d", b"")))
    log("quota set over bytes", outcome(lambda: zk.set("/q/c", b"0123456789") and None))
    log("quota outside", outcome(lambda: zk.create("/qq", b"0123456789" * 5)))
    def tx_over():
        t = zk.transaction()
        t.create("/q/m", b"")
        return t.commit()
    log("quota multi over", outcome(tx_over))
    log("quota delete frees", outcome(lambda: (zk.delete("/q/b"), zk.create("/q/e", b""), stats())[2]))
    zk.delete("/zookeeper/quota/q/zookeeper_limits")
    log("quota lifted", outcome(lambda: zk.create("/q/f", b"")))
    zk.stop()


# The super user's digest id for `super:admin`, given to both servers.
SUPER_DIGEST = "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="


def acls(pairs):
    return [KACL(perms, KId(scheme, ident)) for perms, scheme, ident in pairs]


def acl_list(r):
    return [(a.perms, a.id.scheme, a.id.id) for a in r[0]]


def acl_scenario(hosts, log):
    """ACL checks: the same addauth/create/get/set/delete/getACL/setACL/multi steps on both
    servers must give the same codes. Not compared: exists() on a node the client may not
    read, which Debian's 3.8.0 answers and ZooKeeper 3.8.4+ (ZOOKEEPER-2590), like
    zabkeeper, refuses with NoAuth (server/tests/acl.rs covers it)."""
    def client(auth=None):
        c = KazooClient(hosts=hosts, timeout=10, auth_data=auth)
        c.start(timeout=30)
        return c

    bob = client([("digest", "bob:secret")])
    anon = client()
    log("acl create auth", outcome(lambda: bob.create("/acl", b"s", acl=acls([(31, "auth", "")]))))
    log("acl stored digest", outcome(lambda: acl_list(bob.get_acls("/acl"))))
    log("acl bob get", outcome(lambda: bob.get("/acl")[0]))
    log("acl open child", outcome(lambda: bob.create("/acl/open", b"o", acl=acls([(31, "world", "anyone")]))))
    log("acl anon get", outcome(lambda: anon.get("/acl")))
    log("acl anon children", outcome(lambda: anon.get_children("/acl")))
    log("acl anon children2", outcome(lambda: anon.get_children("/acl", include_data=True)))
    log("acl anon set", outcome(lambda: anon.set("/acl", b"x")))
    log("acl anon create child", outcome(lambda: anon.create("/acl/x", b"")))
    log("acl anon delete child", outcome(lambda: anon.delete("/acl/open")))
    log("acl anon get acl", outcome(lambda: anon.get_acls("/acl")))
    log("acl anon set acl", outcome(lambda: anon.set_acls("/acl", acls([(31, "world", "anyone")]))))
    log("acl anon missing", outcome(lambda: anon.get("/acl/none")))
    log("acl anon readable child", outcome(lambda: anon.get("/acl/open")[0]))
    log("acl anon exists readable child", outcome(lambda: anon.exists("/acl/open")))
    # Invalid lists.
    for name, lst in [("auth without ids", [(31, "auth", "")]), ("world someone", [(31, "world", "someone")]),
                      ("digest no colon", [(31, "digest", "bob")]), ("ip v6", [(31, "ip", "::1")]),
                      ("ip bad prefix", [(31, "ip", "10.0.0.0/33")]), ("unknown scheme", [(31, "x509", "CN=a")]),
                      ("ip cidr", [(31, "ip", "10.0.0.0/8")]), ("digest ok", [(31, "digest", "amy:h=")])]:
        log(f"acl create {name}", outcome(lambda: anon.create(f"/inv-{len(name)}", b"", acl=acls(lst))))
    # Each permission alone, granted to everyone.
    for perm in (1, 2, 4, 8, 16):
        path = f"/p{perm}"
        bob.create(path, b"", acl=acls([(perm, "world", "anyone")]))
        log(f"acl p{perm} get", outcome(lambda: anon.get(path)[0]))
        log(f"acl p{perm} set", outcome(lambda: anon.set(path, b"v") and None))
        log(f"acl p{perm} create", outcome(lambda: anon.create(path + "/k", b"")))
        log(f"acl p{perm} delete", outcome(lambda: anon.delete(path + "/k")))
        log(f"acl p{perm} get acl", outcome(lambda: acl_list(anon.get_acls(path))))
        log(f"acl p{perm} children", outcome(lambda: anon.get_children(path)))
        log(f"acl p{perm} set acl", outcome(lambda: anon.set_acls(path, acls([(perm, "world", "anyone")])) and None))
    # getACL with READ only hides the digest hash; with ADMIN it shows it.
    bob.create("/mixed", b"", acl=acls([(1, "world", "anyone"), (31, "digest", "amy:abc=")]))
    log("acl redacted", outcome(lambda: acl_list(anon.get_acls("/mixed"))))
    log("acl admin sees hash", outcome(lambda: acl_list(bob.get_acls("/acl"))))
    # ip entries match the client's address.
    bob.create("/net", b"n", acl=acls([(1, "ip", "127.0.0.0/8")]))
    bob.create("/far", b"f", acl=acls([(1, "ip", "10.0.0.0/8")]))
    bob.create("/host", b"h", acl=acls([(1, "ip", "127.0.0.1")]))
    log("acl ip cidr", outcome(lambda: anon.get("/net")[0]))
    log("acl ip other net", outcome(lambda: anon.get("/far")[0]))
    log("acl ip host", outcome(lambda: anon.get("/host")[0]))

    # A multi with a denied op.
    def tx():
        t = anon.transaction()
        t.create("/mm", b"")
        t.set_data("/acl", b"")
        return t.commit()
    log("acl multi denied", outcome(tx))
    log("acl multi applied nothing", outcome(lambda: anon.exists("/mm")))
    # aversion.
    log("acl set acl bad version", outcome(lambda: bob.set_acls("/acl", acls([(31, "auth", "")]), version=5)))
    log("acl set acl version", outcome(lambda: bob.set_acls("/acl", acls([(31, "auth", "")]), version=0)))
    # Watch events about a node the watcher may not read are not delivered.
    seen = []
    anon.exists("/wsec", watch=lambda ev: seen.append((ev.type, ev.path)))
    anon.exists("/wopen", watch=lambda ev: seen.append((ev.type, ev.path)))
    bob.create("/wsec", b"", acl=acls([(31, "auth", "")]))
    bob.create("/wopen", b"")
    deadline = time.time() + 5
    while not seen and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    log("acl watch filtered", sorted(seen))
    # addauth after the fact, a second identity, and the super user.
    anon.add_auth("digest", "bob:secret")
    log("acl anon after addauth", outcome(lambda: anon.get("/acl")[0]))
    log("acl auth with two ids", outcome(lambda: (anon.add_auth("digest", "amy:pw"),
                                                  anon.create("/two", b"", acl=acls([(31, "auth", "")])),
                                                  acl_list(anon.get_acls("/two")))[2]))
    wrong = client([("digest", "super:nope")])
    log("acl wrong super", outcome(lambda: wrong.get("/far")))
    root = client([("digest", "super:admin")])
    log("acl super get", outcome(lambda: root.get("/far")[0]))
    log("acl super set", outcome(lambda: root.set("/acl", b"by super") and None))
    log("acl super delete", outcome(lambda: root.delete("/p1")))
    log("acl digest without colon", outcome(lambda: (wrong.add_auth("digest", "nocolon"),
                                                     wrong.create("/nc", b"", acl=acls([(31, "auth", "")])),
                                                     acl_list(wrong.get_acls("/nc")))[2]))
    bad = client()
    log("acl unknown scheme", outcome(lambda: bad.add_auth("kerberos", "x")))
    for c in (bob, anon, wrong, root):
        c.stop()
    try:
        bad.stop()
    except Exception:
        pass


def main():
    ref = ZooKeeper(jvm_args=[f"-Dzookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}",
                              "-Dzookeeper.enforceQuota=true"])
    try:
        expected = scenario(ref.hosts, ref.port)
    finally:
        ref.close()
    ours = Zabkeeper(tick_ms=2000, extra_args=["--super-digest", SUPER_DIGEST])
    try:
        got = scenario(ours.hosts, ours.port)
    finally:
        ours.close()
    failures = 0
    for (name, want), (name2, have) in zip(expected, got):
        assert name == name2
        if want != have:
            failures += 1
            print(f"DIFF {name}:\n  zookeeper: {want}\n  zabkeeper: {have}")
        else:
            print(f"same {name}")
    if len(expected) != len(got):
        failures += 1
        print(f"DIFF step count: zookeeper {len(expected)}, zabkeeper {len(got)}")
    print(f"{len(expected) - failures}/{len(expected)} steps agree")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
