"""`raygan submit` end to end against a real local Ray head (token auth on, free ports).

The head is a `ray start --head --block` child of this test in its own process group, so
teardown stops exactly the processes it started (never `ray stop`, which would end every
Ray on the machine). Every client call is a `raygan` subprocess, as a user would run it.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from raygan.distributed import jobs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RAY_BIN = Path(sys.executable).parent / "ray"
CLI = [sys.executable, "-c", "import sys; from raygan.cli import main; sys.exit(main())"]


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _get(url, token, timeout=5):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    if not RAY_BIN.exists():
        pytest.skip("the ray CLI is not installed beside this python")
    if ray.is_initialized():  # another module's in-process Ray: not needed here
        ray.shutdown()
    tmp = tmp_path_factory.mktemp("jobs")
    temp_dir = tempfile.mkdtemp(prefix="rgh", dir="/tmp")  # short: Ray's unix socket paths
    token = secrets.token_hex(32)
    gcs, dash, client, agent, agent_grpc, renv, metrics, nm, om = _free_ports(9)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "MLFLOW_TRACKING_URI", "RAY_AUTH_TOKEN_PATH")}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_DEDUP_LOGS": "0",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "RAYGAN_CACHE": str(tmp / "cache"), "RAY_USAGE_STATS_ENABLED": "0"})
    log = open(tmp / "head.log", "w")
    proc = subprocess.Popen(
        [str(RAY_BIN), "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard", "true",
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--port", str(gcs),
         "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
         "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(renv),
         "--metrics-export-port", str(metrics), "--node-manager-port", str(nm), "--object-manager-port", str(om),
         "--temp-dir", temp_dir, "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}: {(tmp / 'head.log').read_text()[-2000:]}")
            try:
                if _get(f"{address}/api/jobs/", token)[0] == 200:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the head did not come up: {(tmp / 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        yield {"address": address, "env": env, "tmp": tmp, "token": token}
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: ray start stops the processes it started
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of ours still in its process group
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def raygan(head, *args, env=None, timeout=600):
    return subprocess.run([*CLI, *args], cwd=REPO, env=env or head["env"], capture_output=True, text=True,
                          timeout=timeout)


def tiny_train(head, name, *extra):
    tmp = head["tmp"]
    sets = ["data.name=digits", "data.resolution=28", "model.arch=mlp", "model.z_dim=16",
            "model.g={hidden: [32]}", "model.d={hidden: [32]}", "optim.batch_size=32", "train.tick_kimg=0.128",
            "train.total_kimg=0.256", "train.snapshot_ticks=2", "train.eval_ticks=0", "train.threads=1",
            "eval.final_num_samples=128", "eval.batch_size=128", "eval.inception_weights=random",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db", "tracking.register_model=null", *extra]
    out = ["train", "--preset", "digits", "--workers", "2", "--storage", str(tmp / "store"), "--name", name,
           "--no-progress"]
    for s in sets:
        out += ["--set", s]
    return out


def test_submit_tiny_two_worker_training_end_to_end(head):
    r = raygan(head, "submit", "--address", head["address"], "--", *tiny_train(head, "e2e"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"submitted job \S+ to " + re.escape(head["address"]), r.stdout)
    assert "SUCCEEDED" in r.stdout
    assert "run dir:" in r.stdout and "mlflow run:" in r.stdout  # the job's own output, streamed
    # a checkpoint on the storage path, with both ranks' RNG files
    ckpt = head["tmp"] / "store" / "e2e" / "checkpoints" / "ckpt-0000000256"
    assert {"state.pt", "rng-rank0.pt", "rng-rank1.pt"} <= {p.name for p in ckpt.iterdir()}
    # and the MLflow run, finished, with the metrics and the generator
    from mlflow.tracking import MlflowClient

    run_id = json.loads((head["tmp"] / "store" / "e2e" / "run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{head['tmp']}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["raygan.workers"] == "2"
    assert max(m.step for m in client.get_metric_history(run_id, "kimg")) == 256
    assert "fid" in run.data.metrics and "final_fid" in run.data.metrics


def test_no_wait_status_logs_list_and_a_failing_jobs_exit_status(head):
    addr = ["--address", head["address"]]
    r = raygan(head, "submit", *addr, "--no-wait", "--", "presets")
    assert r.returncode == 0, r.stderr
    job_id = re.search(r"submitted job (\S+)", r.stdout).group(1)
    deadline = time.time() + 120
    while True:
        st = raygan(head, "submit", *addr, "--status", job_id)
        assert st.returncode == 0, st.stderr
        if any(s in st.stdout for s in jobs.TERMINAL) or time.time() > deadline:
            break
        time.sleep(1)
    assert f"{job_id}  SUCCEEDED" in st.stdout
    logs = raygan(head, "submit", *addr, "--logs", job_id)
    assert "digits" in logs.stdout and "mlp" in logs.stdout
    listed = raygan(head, "submit", *addr, "--list")
    assert job_id in listed.stdout and "SUCCEEDED" in listed.stdout

    # the job's own exit status comes back: an unknown preset exits 2 inside the job
    bad = raygan(head, "submit", *addr, "--", "train", "--preset", "nope", "--workers", "1")
    assert bad.returncode == 2, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert "unknown preset 'nope'" in bad.stdout and "FAILED" in bad.stderr


def test_stop_a_running_job(head):
    addr = ["--address", head["address"]]
    long_run = tiny_train(head, "stopme", "train.total_kimg=1000")
    r = raygan(head, "submit", *addr, "--no-wait", "--", *long_run)
    assert r.returncode == 0, r.stderr
    job_id = re.search(r"submitted job (\S+)", r.stdout).group(1)
    stop = raygan(head, "submit", *addr, "--stop", job_id)
    assert stop.returncode == 0 and job_id in stop.stdout
    deadline = time.time() + 120
    while time.time() < deadline:
        st = raygan(head, "submit", *addr, "--status", job_id).stdout
        if any(s in st for s in jobs.TERMINAL):
            break
        time.sleep(1)
    assert "STOPPED" in st


def test_token_auth_missing_token_is_one_line(head):
    env = {k: v for k, v in head["env"].items() if k != "RAY_AUTH_TOKEN"}
    env["RAY_AUTH_MODE"] = "disabled"  # this client sends no token
    env["HOME"] = str(head["tmp"] / "home")  # and finds none in ~/.ray/auth_token
    r = raygan(head, "submit", "--address", head["address"], "--list", env=env, timeout=120)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert "RAY_AUTH_MODE=token" in err and len(err.splitlines()) == 1, err


def test_no_cluster_at_address_is_fast_and_one_line(tmp_path):
    port = _free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    t0 = time.time()
    r = subprocess.run([*CLI, "submit", "--address", f"http://127.0.0.1:{port}", "--", "presets"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and time.time() - t0 < 20
    assert f"no Ray cluster at http://127.0.0.1:{port}" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_no_cluster_hint_suggests_an_ssh_tunnel_not_binding_the_dashboard_to_every_interface():
    """The hint (and submit's --help) point at `ray dashboard cluster.yaml` / `ssh -L`, never at
    `--dashboard-host 0.0.0.0`, which would expose the job server on every interface."""
    port = _free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    r = subprocess.run([*CLI, "submit", "--address", f"http://127.0.0.1:{port}", "--list"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    h = subprocess.run([*CLI, "submit", "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert h.returncode == 0
    for text in (r.stderr, h.stdout):
        assert "0.0.0.0" not in text and "dashboard-host" not in text
        assert "ray dashboard cluster.yaml" in text and "ssh -L 8265:localhost:8265" in text


def test_entrypoints_and_excludes(tmp_path):
    assert jobs.entrypoint(["train", "--preset", "digits", "--set", "a=b c"], str(REPO)) == \
        "python jobs/train.py --preset digits --set 'a=b c'"
    assert jobs.entrypoint(["tune", "--preset", "x"], str(REPO)).startswith("python jobs/tune.py ")
    assert jobs.entrypoint(["train", "--preset", "digits"], str(tmp_path)).startswith("python -c ")
    assert "from raygan.cli import main" in jobs.entrypoint(["presets"], str(REPO))
    with pytest.raises(jobs.JobError):
        jobs.entrypoint([], str(REPO))
    # what travels: the code and the shipped weights, not runs, stores, venvs, data or checkpoints
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(REPO, jobs.EXCLUDES)
    for p in ("runs/x/ckpt/state.pt", "mlflow.db", "mlartifacts/1/a.png", ".venv/bin/python", "data/train.gz",
              "model.pt", ".git/HEAD", "raygan/__pycache__/x.pyc"):
        assert excluded(REPO / p), p
    for p in ("raygan/cli.py", "jobs/train.py", "raygan/metrics/weights/fmnist_cnn.pt", "cluster.yaml"):
        assert not excluded(REPO / p), p
    renv = jobs.runtime_env(str(REPO), {"A": "1"})
    assert renv["working_dir"] == str(REPO) and renv["env_vars"] == {"A": "1"}


# ---------------------------------------------------------------------------- what travels, what is seen
SECRETS = [".env", "sub/.env", ".env.local", "key.pem", "server.key", "cert.p12", ".ssh/id_rsa", "id_ed25519",
           ".aws/credentials", ".netrc", ".ray/auth_token", ".git-credentials", "deep/er/.kube/config"]
CODE = ["jobs/train.py", "raygan/__init__.py", "raygan/metrics/weights/fmnist_cnn.pt", "cluster.yaml", "notes.md"]


def _packaged(working_dir, renv, include_gitignore):
    """The file names in the zip Ray's job client would upload for this runtime env (its own
    working_dir upload path and packaging function, with the upload replaced by a local zip)."""
    import zipfile

    from ray._private.runtime_env.packaging import create_package
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    target = Path(working_dir).parent / f"pkg-{include_gitignore}.zip"

    def upload(path, excludes, is_file=False):
        create_package(path, target, include_gitignore=include_gitignore, excludes=excludes)

    upload_working_dir_if_needed(dict(renv), include_gitignore=include_gitignore, upload_fn=upload)
    with zipfile.ZipFile(target) as z:
        names = set(z.namelist())
    target.unlink()
    return names


@pytest.mark.parametrize("include_gitignore", [True, False])
def test_secret_files_do_not_travel_with_the_working_dir(tmp_path, include_gitignore):
    wd = tmp_path / "wd"
    for rel in SECRETS + CODE:
        (wd / rel).parent.mkdir(parents=True, exist_ok=True)
        (wd / rel).write_text("x")
    (wd / ".gitignore").write_text("!.env\n!key.pem\n")  # a user's gitignore cannot bring them back
    names = _packaged(wd, jobs.runtime_env(str(wd)), include_gitignore)
    assert set(CODE) <= names, names
    shipped = [s for s in SECRETS if s in names]
    assert not shipped, f"shipped: {shipped}"
    # and deliberately: they do travel when asked for (the check above is not vacuous)
    everything = _packaged(wd, jobs.runtime_env(str(wd), include_secret_files=True), include_gitignore)
    assert {".ssh/id_rsa", "key.pem", ".aws/credentials"} <= everything
    if not include_gitignore:
        assert ".env" in everything


class _RecordingClient:
    def __init__(self):
        self.calls = []

    def submit_job(self, **kwargs):
        self.calls.append(kwargs)
        return "raysubmit_x"


def test_env_values_go_only_into_the_runtime_envs_env_vars(tmp_path):
    secret = "s3cr3t-" + "9f" * 8
    client = _RecordingClient()
    env = jobs.parse_env(["MLFLOW_TRACKING_USERNAME=alice", "MLFLOW_TRACKING_PASSWORD"],
                         {"MLFLOW_TRACKING_PASSWORD": secret})
    assert jobs.submit(client, ["train", "--preset", "digits"], str(REPO), env) == "raysubmit_x"
    call = client.calls[0]
    assert secret not in call["entrypoint"] and "alice" not in call["entrypoint"]
    assert secret not in json.dumps(call.get("metadata") or {})
    assert call["runtime_env"]["env_vars"] == {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": secret}
    assert set(jobs.SECRET_EXCLUDES) <= set(call["runtime_env"]["excludes"])


def test_env_parsing_and_credentials_in_the_command_line_are_one_line_errors():
    with pytest.raises(jobs.JobError, match="not set in this environment"):
        jobs.parse_env(["NOPE_NOT_SET"], {})
    for bad in ["=x", "1A=2", "A B=c"]:
        with pytest.raises(jobs.JobError, match="expected KEY=VALUE"):
            jobs.parse_env([bad], {})
    with pytest.raises(jobs.JobError) as e:
        jobs.entrypoint(["train", "--set", "tracking.uri=http://bob:hunter2@head:5000"], str(REPO))
    assert "hunter2" not in str(e.value) and "--env" in str(e.value) and "\n" not in str(e.value)
    assert jobs.entrypoint(["train", "--set", "tracking.uri=http://head:5000"], str(REPO)).endswith("http://head:5000")


def test_a_submitted_jobs_record_holds_env_values_only_in_its_runtime_env(head):
    """What the cluster keeps (and shows to dashboard users): the secret is in runtime_env.env_vars
    (as README says), never in the entrypoint or metadata."""
    secret = "s3cr3t-" + secrets.token_hex(8)
    r = raygan(head, "submit", "--address", head["address"], "--no-wait", "--env", f"RAYGAN_TEST_SECRET={secret}",
               "--", "presets")
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    job_id = re.search(r"submitted job (\S+)", r.stdout).group(1)
    record = json.loads(_get(f"{head['address']}/api/jobs/{job_id}", head["token"])[1])
    assert secret not in record["entrypoint"] and secret not in json.dumps(record.get("metadata") or {})
    assert record["runtime_env"]["env_vars"]["RAYGAN_TEST_SECRET"] == secret
