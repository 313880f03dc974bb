"""Starting zabkeeper (and Apache ZooKeeper, for differential tests) on loopback for tests."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def four_letter(port, word):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk


def zabkeeper_bin():
    path = os.environ.get("ZABKEEPER_BIN") or os.path.join(ROOT, "target", "debug", "zabkeeper")
    if not os.path.exists(path):
        raise RuntimeError(f"zabkeeper binary not found at {path}; build it or set ZABKEEPER_BIN")
    return path


class Zabkeeper:
    """A zabkeeper process with its own data directory; restart() keeps directory and ports."""

    def __init__(self, tick_ms=100, extra_args=()):
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="zk-compat-")
        self.port = free_port()
        self.native_port = free_port()
        self.tick_ms = tick_ms
        self.proc = None
        self.start()

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [zabkeeper_bin(), "--data-dir", self.dir, "--port", str(self.native_port),
             "--zk-port", str(self.port), "--admin-port", "0", "--tick-ms", str(self.tick_ms)] + self.extra_args,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "server.log"), "ab"),
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
        wait_port(self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def zookeeper_classpath():
    """Debian's zookeeper.jar pulls in jute/netty/slf4j through its manifest; log4j for logging."""
    if not os.path.exists("/usr/share/java/zookeeper.jar"):
        return None
    cp = ["/usr/share/java/zookeeper.jar"]
    cp += [j for j in ("/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar") if os.path.exists(j)]
    return ":".join(cp)


class ZooKeeper:
    """Apache ZooKeeper 3.8 standalone (Debian's jars) on a loopback port."""

    def __init__(self, jvm_args=()):
        cp = zookeeper_classpath()
        if cp is None:
            raise RuntimeError("ZooKeeper jars not found under /usr/share/java (run scripts/install-test-deps)")
        self.dir = tempfile.mkdtemp(prefix="zk-ref-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={self.dir}/data\nclientPort={self.port}\n"
                    "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    "4lw.commands.whitelist=*\nextendedTypesEnabled=true\n")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-Dzookeeper.extendedTypesEnabled=true", *jvm_args, "-cp", cp,
             "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
            stdout=open(os.path.join(self.dir, "zk.log"), "ab"), stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=60)

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
