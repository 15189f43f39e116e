"""A local Ray cluster started by raygan (cluster.connect without an address) is private to
this machine: every listening socket of the driver and its Ray processes is on loopback, usage
stats are off, its Ray token file is readable by this user only, and a SIGKILLed driver leaves
no Ray process behind for long.

Each cluster runs in a driver subprocess with its own RAY_TMPDIR (so it cannot join another
cluster on the machine) and HOME (so its token is its own), and the test ends every process it
recorded.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # vendored with ray[default], importable after ray

from raygan.distributed import local_cluster  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# The driver: connect the way `raygan train` does, start workers and an actor, then report.
DRIVER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {repo!r})
    import ray, psutil
    from raygan.distributed import cluster
    cluster.connect(None, log_to_driver=False)
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # restored after the start

    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        def ping(self):
            return 1

    a = A.remote()
    ray.get([f.remote() for _ in range(2)] + [a.ping.remote()])
    time.sleep(3)  # let every agent and metrics server come up
    me = psutil.Process()
    tree = [me] + me.children(recursive=True)
    pids = {{p.pid for p in tree}}
    socks = [[c.laddr.ip, c.laddr.port, c.pid] for c in psutil.net_connections(kind="tcp")
             if c.status == psutil.CONN_LISTEN and c.pid in pids]
    names, envs = {{}}, {{}}
    for p in tree:
        try:
            names[p.pid] = p.name()
            envs[p.name()] = p.environ().get("RAY_USAGE_STATS_ENABLED")
        except psutil.Error:
            pass
    starts = [[p, open(f"/proc/{{p}}/stat").read().rsplit(")", 1)[1].split()[19]] for p in pids if p != me.pid]
    token = os.path.expanduser("~/.ray/auth_token")
    token_mode = os.stat(token).st_mode & 0o777 if os.path.exists(token) else None
    print(json.dumps({{"socks": socks, "names": names, "envs": envs, "procs": starts, "token_mode": token_mode}}),
          flush=True)
    if {hold}:
        time.sleep(600)
    ray.shutdown()
""")


def _env(tmp):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
           and not k.startswith("RAY_AUTH_")}
    env.update({"RAY_TMPDIR": tmp, "RAY_DEDUP_LOGS": "0", "PYTHONPATH": str(REPO), "HOME": tmp})
    return env


def _reap(procs):
    for pid, start in procs:
        if local_cluster._start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def ray_tmp():
    tmp = tempfile.mkdtemp(prefix="rgl", dir="/tmp")  # short: Ray's unix socket paths
    yield tmp
    subprocess.run(["rm", "-rf", tmp], check=False)


def _start_driver(tmp, hold):
    code = DRIVER.format(repo=str(REPO), hold=hold)
    with open(Path(tmp) / "driver.err", "w") as err:  # a file: a full pipe would stall the driver
        return subprocess.Popen([sys.executable, "-c", code], env=_env(tmp), cwd=tmp, stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True)


def _report(proc, tmp):
    line = proc.stdout.readline()  # the driver prints one line, or exits
    if not line:
        proc.kill()
        pytest.fail(f"driver gave no report: {(Path(tmp) / 'driver.err').read_text()[-3000:]}")
    return json.loads(line)


def test_local_cluster_listens_on_loopback_only_and_has_usage_stats_off(ray_tmp):
    proc = _start_driver(ray_tmp, hold=False)
    report = {}
    try:
        report = _report(proc, ray_tmp)
        assert proc.wait(timeout=120) == 0, (Path(ray_tmp) / "driver.err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        _reap([tuple(p) for p in report.get("procs", [])])
    names = {int(k): v for k, v in report["names"].items()}
    socks = [(ip, port, names.get(pid, "?")) for ip, port, pid in report["socks"]]
    servers = {name for _, _, name in socks}
    # not vacuous: the GCS, the raylet, the agents and the workers were all seen listening
    assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= servers, socks
    assert len(socks) >= 10, socks
    exposed = [s for s in socks if s[0] not in LOOPBACK]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert report["envs"].get("gcs_server") == "0"  # usage stats off in the cluster's processes
    err = (Path(ray_tmp) / "driver.err").read_text()
    assert "Token authentication is enabled" not in err, err[-2000:]  # Ray's notice, which reads like an error
    assert report["token_mode"] == 0o600  # the token Ray's auth uses: not 0644 (Ray's own open())


def test_local_cluster_token_is_created_and_kept_readable_by_this_user_only(tmp_path):
    """private_token, as connect() calls it before a local cluster starts, under a umask of 022
    (with which Ray's own open() leaves the token 0644)."""
    old = os.umask(0o022)
    try:
        env = {"HOME": str(tmp_path)}
        path = local_cluster.private_token(env)
        assert path == tmp_path / ".ray" / "auth_token"
        assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / ".ray").stat().st_mode & 0o777 == 0o700
        token = path.read_text()
        assert len(token) == 64 and int(token, 16)  # 256 random bits, as Ray draws them
        assert local_cluster.private_token(env) == path and path.read_text() == token  # kept, not redrawn
        path.chmod(0o644)  # a token Ray wrote earlier
        local_cluster.private_token(env)
        assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == token
        other = tmp_path / "other"
        assert local_cluster.private_token({"HOME": str(other), "RAY_AUTH_MODE": "disabled"}) is None
        assert local_cluster.private_token({"HOME": str(other), "RAY_AUTH_TOKEN": "x" * 64}) is None
        assert not other.exists()
    finally:
        os.umask(old)


def test_killed_driver_leaves_no_ray_process_behind(ray_tmp):
    proc = _start_driver(ray_tmp, hold=True)
    procs = []
    try:
        procs = [tuple(p) for p in _report(proc, ray_tmp)["procs"]]
        assert len(procs) >= 5
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.time() + 15  # Ray alone: its agents linger 60 s
        alive = procs
        while time.time() < deadline:
            alive = [p for p in procs if local_cluster._start_time(p[0]) == p[1]]
            if not alive:
                break
            time.sleep(0.5)
        left = {p: psutil.Process(p).name() for p, _ in alive if psutil.pid_exists(p)}
        assert not alive, f"still running 15 s after the driver was killed: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        _reap(procs)


def test_local_env_keeps_a_users_usage_stats_choice():
    assert local_cluster.local_cluster_env({}) == {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                                                   "RAY_USAGE_STATS_ENABLED": "0"}
    assert "RAY_USAGE_STATS_ENABLED" not in local_cluster.local_cluster_env({"RAY_USAGE_STATS_ENABLED": "1"})


def test_loopback_mode_is_only_on_while_the_cluster_starts(monkeypatch):
    from ray._private import ray_constants, services

    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    before = ray_constants.ENABLE_RAY_CLUSTER
    with local_cluster.loopback_only():
        assert services.get_node_ip_address() == "127.0.0.1"
        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert ray_constants.ENABLE_RAY_CLUSTER == before
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


def test_starts_local_cluster_only_without_an_address(monkeypatch, ray_tmp):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    assert local_cluster.starts_local_cluster(None) and local_cluster.starts_local_cluster("local")
    assert not local_cluster.starts_local_cluster("10.0.0.1:6379")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # inside a Ray job
    assert not local_cluster.starts_local_cluster(None)


def test_reap_ends_the_recorded_process_and_spares_a_reused_pid():
    p = subprocess.Popen(["sleep", "60"])
    try:
        start = local_cluster._start_time(p.pid)
        local_cluster.reap([(p.pid, str(int(start) + 1))], grace_s=0.2)  # another process with this pid
        assert p.poll() is None
        local_cluster.reap([(p.pid, start)], grace_s=0.2)
        assert p.wait(timeout=5) == -signal.SIGTERM
    finally:
        p.kill()


TRAIN_DRIVER = textwrap.dedent("""
    import json, os, sys, tempfile
    sys.path.insert(0, {repo!r})
    import ray
    from raygan.distributed import cluster
    cluster.connect(None, log_to_driver=False)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def loop(out):
        import psutil, torch, torch.distributed as dist
        t = torch.ones(1)
        dist.all_reduce(t)  # the process group is up: its store and gloo pairs listen now
        socks = [[c.laddr.ip, c.laddr.port] for c in psutil.Process().net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN]
        with open(f"{{out}}/rank{{dist.get_rank()}}.json", "w") as f:
            json.dump(socks, f)

    out, store = tempfile.mkdtemp(dir=os.getcwd()), tempfile.mkdtemp(dir=os.getcwd())  # absolute
    TorchTrainer(lambda: loop(out), scaling_config=ScalingConfig(num_workers=2),
                 run_config=RunConfig(storage_path=store, name="probe")).fit()
    import glob
    print(json.dumps([s for p in sorted(glob.glob(out + "/rank*.json")) for s in json.load(open(p))]), flush=True)
    ray.shutdown()
""")


def test_ray_train_workers_listen_on_loopback_only(ray_tmp):
    """Rank 0's rendezvous store (torch's TCPStore) would listen on `::` without the setup hook."""
    code = TRAIN_DRIVER.format(repo=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(ray_tmp), cwd=ray_tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    socks = json.loads(out.strip().splitlines()[-1])
    assert len(socks) >= 3, socks  # the store and the ranks' gloo pairs
    exposed = [s for s in socks if s[0] not in LOOPBACK]
    assert not exposed, f"Train workers listening beyond loopback: {exposed}"
