"""cluster.yaml is a valid Ray cluster-launcher config (Ray's own schema and defaults), with
the pieces the docs promise; k8s/rayjob.yaml is a well-formed KubeRay RayJob. Both are secure by
default: Ray token auth on, MLflow behind basic auth and TLS, jobs logging as a user of their own
(not MLflow's admin), no port open to the world, the dashboard of cluster.yaml on loopback,
credentials handed to the nodes from a secret (never in the files), NetworkPolicies for the k8s
pods that admit peers by namespace and by labels their operators set."""
import copy
import http.client
import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster_config():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_rays_schema(cluster_config):
    jsonschema = pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config
    import json
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cluster_config, schema)  # as written
    validate_config(prepare_config(copy.deepcopy(cluster_config)))  # as `ray up` fills it out


def test_schema_check_is_not_vacuous(cluster_config):
    jsonschema = pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    bad = copy.deepcopy(cluster_config)
    bad["available_node_types"]["gpu_1x"]["min_wokers"] = 1  # a typo must fail
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def test_cluster_yaml_has_cpu_head_gpu_workers_install_storage_and_mlflow(cluster_config):
    c = cluster_config
    assert c["provider"]["type"] == "aws"
    types = c["available_node_types"]
    head = types[c["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))  # a CPU head
    gpu_types = [t for n, t in types.items() if n != c["head_node_type"]]
    assert gpu_types and all(t["node_config"]["InstanceType"].startswith(("g5", "g6", "p3", "p4", "p5"))
                             for t in gpu_types)
    assert all(t["min_workers"] == 0 for t in gpu_types)  # autoscaled
    setup = " ".join(c["setup_commands"])
    assert "pip install" in setup and "-e ~/raygan" in setup and "ray[default,train,tune]==2.60.0" in setup
    assert c["file_mounts"]["~/raygan"] == "."
    assert "RAYGAN_STORAGE=s3://" in setup  # shared storage for checkpoints
    head_start = " ".join(c["head_start_ray_commands"])
    assert "mlflow server" in head_start and "--port 5000" in head_start
    assert "export MLFLOW_TRACKING_URI=https://raygan-mlflow:5000" in _env_lines(c)  # every node
    # every start command sources the env file before `ray start`, and the shell sees it all
    for cmd in c["head_start_ray_commands"] + c["worker_start_ray_commands"]:
        if "ray start" in cmd:
            assert cmd.index("source ~/.raygan_env") < cmd.index("ray start")
            assert "#" not in cmd  # a comment in a folded command would swallow `ray start`
            shlex.split(cmd)


def _k8s_docs(name):
    return [d for d in yaml.safe_load_all((ROOT / "k8s" / name).read_text()) if d]


def _kind(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert found, f"no {kind}"
    return found


def test_rayjob_example():
    job = _kind(_k8s_docs("rayjob.yaml"), "RayJob")[0]
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python" and argv[1].endswith("jobs/train.py")
    workers = int(argv[argv.index("--workers") + 1])
    gpus = float(argv[argv.index("--gpus-per-worker") + 1])
    cpus = float(argv[argv.index("--cpus-per-worker") + 1])
    # the raygan CLI accepts the entrypoint's arguments
    from raygan.cli import build_parser

    args = build_parser().parse_args(["train", *argv[2:]])
    assert args.workers == workers
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["RAYGAN_STORAGE"].startswith("s3://") and env["MLFLOW_TRACKING_URI"].startswith("http")
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    group = cluster["workerGroupSpecs"][0]
    res = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    per_pod_gpus = float(res["nvidia.com/gpu"])
    per_pod_cpus = float(res["cpu"])
    assert group["maxReplicas"] * per_pod_gpus >= workers * gpus  # the request can be met
    assert per_pod_cpus >= cpus and per_pod_gpus >= gpus


# ---------------------------------------------------------------------------- security: cluster.yaml
WORLD = ("0.0.0.0/0", "::/0")
# Ports that must stay inside the cluster: MLflow, GCS, dashboard/job server, Ray client,
# object manager, the dashboard agent, the metrics export / Prometheus ports.
PRIVATE_PORTS = (5000, 6379, 8265, 10001, 8076, 52365, 8080, 44217, 44227)


def _launcher_default_rules(sgid, extra):
    """The inbound rules the AWS launcher puts on its security group (ray 2.60,
    autoscaler/_private/aws/config.py _create_default_inbound_rules): all traffic from the
    cluster's own group, SSH from anywhere, then provider.security_group.IpPermissions."""
    try:
        from ray.autoscaler._private.aws.config import _create_default_inbound_rules
    except ImportError:  # needs boto3; the same rules, as that function writes them
        return ([{"FromPort": -1, "ToPort": -1, "IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sgid}]},
                 {"FromPort": 22, "ToPort": 22, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
                + list(extra))
    return _create_default_inbound_rules([sgid], extra)


def _open_to_world(rule):
    cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
    cidrs += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
    return any(c in WORLD for c in cidrs)


def _covers(rule, port):
    if rule.get("IpProtocol") == "-1":
        return True
    return rule.get("FromPort", -1) <= port <= rule.get("ToPort", -1)


def test_no_security_group_rule_opens_ray_or_mlflow_to_the_world(cluster_config):
    sg = cluster_config["provider"]["security_group"]  # the group is named and its rules are ours
    assert sg["GroupName"]
    extra = sg.get("IpPermissions", [])
    assert not [r for r in extra if _open_to_world(r)], extra
    for t in cluster_config["available_node_types"].values():  # no node type brings its own open group
        assert "SecurityGroupIds" not in t["node_config"] or t["node_config"]["SecurityGroupIds"]
    rules = _launcher_default_rules("sg-raygan", extra)
    for port in PRIVATE_PORTS:
        reach = [r for r in rules if _covers(r, port)]
        assert reach and not [r for r in reach if _open_to_world(r)], (port, reach)
        # what does reach them is the cluster's own group
        assert all(r.get("UserIdGroupPairs") for r in reach), (port, reach)


def _start_commands(c):
    return [cmd for cmd in c["head_start_ray_commands"] + c["worker_start_ray_commands"]
            if "ray start" in cmd or "mlflow server" in cmd]


def _env_lines(c):
    """The lines setup_commands writes to ~/.raygan_env, which every start command sources."""
    env_file = next(cmd for cmd in c["setup_commands"] if "~/.raygan_env" in cmd)
    return [ln.strip().strip("'") for ln in re.findall(r"'[^']*'", env_file)]


def test_ray_token_auth_is_on_on_every_node(cluster_config):
    c = cluster_config
    lines = _env_lines(c)
    assert "export RAY_AUTH_MODE=token" in lines  # set, not commented out
    assert not [ln for ln in lines if ln.startswith("#")]
    assert c["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # one token, copied over SSH
    for cmd in _start_commands(c):
        assert "source ~/.raygan_env" in cmd


def _mlflow_command(c):
    return next(cmd for cmd in c["head_start_ray_commands"] if "mlflow server" in cmd)


def _job_user_command(c):
    return next(cmd for cmd in c["head_start_ray_commands"] if "raygan.distributed.mlflow_users" in cmd)


def _header_command(c, start):
    """A command of the file's header (what the user runs once on their machine), joined."""
    text = (ROOT / "cluster.yaml").read_text()
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")]
    i = next(i for i, ln in enumerate(lines) if ln.startswith(start))
    cmd = lines[i]
    while cmd.endswith("\\"):
        i += 1
        cmd = cmd[:-1] + " " + lines[i]
    return cmd.split("  #")[0]


def test_mlflow_runs_behind_basic_auth_with_credentials_from_the_secret_file(cluster_config):
    c = cluster_config
    cmd = _mlflow_command(c)
    assert "--app-name basic-auth" in cmd and "MLFLOW_AUTH_CONFIG_PATH=" in cmd
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY=$(" in cmd  # basic auth refuses to start without one
    assert "default_permission = NO_PERMISSIONS" in cmd  # users other than the admin see nothing
    assert "umask 077" in cmd  # the auth config holds the admin password: mode 600
    setup = " ".join(c["setup_commands"])
    assert "mlflow[auth]" in setup  # the basic-auth app's extra (Flask-WTF)
    assert c["file_mounts"]["~/.raygan_secrets"].startswith("~/")  # from the user's machine, not the repo
    assert "chmod 600" in setup and "~/.raygan_secrets" in setup
    # every node exports the jobs' credentials before `ray start`, so jobs and Train workers have them
    for cmd in _start_commands(c):
        if "ray start" in cmd:
            assert "set -a; source ~/.raygan_secrets; set +a;" in cmd
            assert cmd.index("source ~/.raygan_secrets") < cmd.index("ray start")


def test_jobs_log_as_their_own_mlflow_user_never_the_admin(cluster_config):
    """The admin's password is drawn on the head and read from there only, by the server's auth
    config and by the command that makes the jobs' user; what every node exports is that user."""
    c = cluster_config
    server = _mlflow_command(c)
    assert "admin_username = admin" in server
    assert "[ -s ~/mlflow/admin_password ] || (umask 077; python3 -c 'import secrets" in server  # drawn once, 600
    assert '"$(cat ~/mlflow/admin_password)"' in server
    assert "~/.raygan_secrets" not in server  # the server does not need the jobs' user
    users = _job_user_command(c)
    assert "RAYGAN_JOB_USERNAME=$MLFLOW_TRACKING_USERNAME RAYGAN_JOB_PASSWORD=$MLFLOW_TRACKING_PASSWORD" in users
    assert "MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=$(cat ~/mlflow/admin_password)" in users
    assert "--edit raygan" in users  # the default experiment: EDIT, not MANAGE
    head = c["head_start_ray_commands"]
    ray_start = next(i for i, cmd in enumerate(head) if "ray start" in cmd)
    assert head.index(server) < head.index(users) < ray_start  # the user exists before any job runs
    for cmd in head + c["worker_start_ray_commands"] + c["setup_commands"]:
        if cmd not in (server, users):
            assert "admin_password" not in cmd and "admin" not in cmd.replace("MLFLOW_TRACKING_USERNAME=admin", "")
    # the admin's password is on no file mount (they are copied to every node) and not in the header's secrets
    assert not [src for src in c["file_mounts"].values() if "admin" in src]
    secrets_cmd = _header_command(c, "mkdir -p ~/.raygan/tls")
    assert "MLFLOW_TRACKING_USERNAME=raygan-job" in secrets_cmd and "=admin" not in secrets_cmd


def test_mlflow_speaks_only_tls_with_the_certificate_every_node_checks(cluster_config):
    c = cluster_config
    server = _mlflow_command(c)
    assert ('--uvicorn-opts "--ssl-certfile $HOME/.raygan_tls/mlflow.crt --ssl-keyfile $HOME/.raygan_tls/mlflow.key"'
            in server)
    assert "raygan-mlflow:5000" in server.split("--allowed-hosts")[1].split()[0]  # the name the nodes use
    env = _env_lines(c)
    assert "export MLFLOW_TRACKING_URI=https://raygan-mlflow:5000" in env
    assert "export MLFLOW_TRACKING_SERVER_CERT_PATH=$HOME/.raygan_tls/mlflow.crt" in env  # checked, not skipped
    assert not [ln for ln in env if "INSECURE" in ln or "http://" in ln]
    assert c["file_mounts"]["~/.raygan_tls"] == "~/.raygan/tls"  # from the user's machine, not the repo
    assert "~/.raygan_tls/mlflow.key" in next(cmd for cmd in c["setup_commands"] if cmd.startswith("chmod 600"))
    # the certificate's name points at the head on every node
    hosts = [cmd for cmd in c["head_start_ray_commands"] + c["worker_start_ray_commands"] if "/etc/hosts" in cmd]
    assert any("'127.0.0.1 raygan-mlflow'" in h for h in hosts) and any('"$RAY_HEAD_IP raygan-mlflow"' in h for h in hosts)
    for cmds in (c["head_start_ray_commands"], c["worker_start_ray_commands"]):
        host = next(i for i, cmd in enumerate(cmds) if "/etc/hosts" in cmd)
        assert host < next(i for i, cmd in enumerate(cmds) if "ray start" in cmd)
    cert = _header_command(c, "(umask 077; openssl req")
    assert "subjectAltName=DNS:raygan-mlflow" in cert and "-keyout ~/.raygan/tls/mlflow.key" in cert


def test_dashboard_listens_on_the_heads_loopback_only(cluster_config):
    """`ray dashboard cluster.yaml` forwards to the head's localhost:8265; jobs use the GCS."""
    head = next(cmd for cmd in cluster_config["head_start_ray_commands"] if "ray start" in cmd)
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in " ".join(cmd for cmd in _start_commands(cluster_config) if "ray start" in cmd)


# Secret-looking names followed by a literal value (not a $VARIABLE, a %s or a reference)
_ASSIGN = re.compile(r"\b([A-Z][A-Z0-9_]*(?:PASSWORD|TOKEN|SECRET)[A-Z0-9_]*|(?i:admin_password|password|auth_token))"
                     r"\s*[=:]\s*"
                     r"(?![\"']?\$|%s|\{|\s*$)([\"']?[^\s\"'\\]+)")


def _plaintext_credentials(text):
    found = []
    for m in _ASSIGN.finditer(text):
        line = text[text.rfind("\n", 0, m.start()) + 1:text.find("\n", m.end())]
        if "--from-literal" in line or "secretKeyRef" in line or "valueFrom" in m.group(0):
            continue
        found.append(m.group(0))
    return found


def test_detector_finds_plaintext_credentials():
    for bad in ["MLFLOW_TRACKING_PASSWORD=hunter2", "admin_password = password1234", "RAY_AUTH_TOKEN: abc123",
                "- name: X\n  password: s3cret", "auth_token: 0123abcd"]:
        assert _plaintext_credentials(bad), bad
    for ok in ['"$MLFLOW_TRACKING_PASSWORD"', "admin_password = %s", "RAY_AUTH_TOKEN=$(cat f)",
               "password: {secretKeyRef: {name: a, key: b}}", "MLFLOW_TRACKING_PASSWORD=%s\\n",
               "secretName: raygan-ray-token"]:
        assert not _plaintext_credentials(ok), ok


@pytest.mark.parametrize("name", ["cluster.yaml", "k8s/rayjob.yaml", "k8s/mlflow.yaml"])
def test_no_plaintext_credentials_in_the_files(name):
    text = (ROOT / name).read_text()
    assert not _plaintext_credentials(text), _plaintext_credentials(text)
    assert "password1234" not in text


# ---------------------------------------------------------------------------- security: k8s
def _containers(pod_template):
    return pod_template["spec"]["containers"]


def _secret_env(container, name):
    env = {e["name"]: e for e in container.get("env", [])}
    assert name in env, (container["name"], name)
    assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"], env[name]
    return env[name]["valueFrom"]["secretKeyRef"]


def test_rayjob_has_token_auth_and_mlflow_credentials_from_secrets():
    job = _kind(_k8s_docs("rayjob.yaml"), "RayJob")[0]
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token" and cluster["authOptions"]["secretName"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for t in templates:
        for c in _containers(t):
            user, password = (_secret_env(c, v) for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"))
            assert user["name"] == password["name"]
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert not [k for k in env if re.search("PASSWORD|TOKEN|SECRET", k)], env  # job records are readable


# Labels that an operator writes on the pods it creates (KubeRay on Ray pods, the Job controller on
# a Job's pods, the KubeRay Helm chart on the operator), and the namespace label the API server sets.
OPERATOR_LABELS = {"ray.io/is-ray-node", "ray.io/node-type", "ray.io/cluster", "ray.io/group",
                   "app.kubernetes.io/created-by", "batch.kubernetes.io/job-name", "app.kubernetes.io/name"}
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


def _matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and \
        not selector.get("matchExpressions")


def _admits(policies, target, peer, port):
    """NetworkPolicy semantics for ingress: `target` and `peer` are (namespace, labels). No policy
    selecting the target: all traffic; else allowed when some rule of a selecting policy admits
    the peer on that port (a peer with a namespaceSelector: its namespace's labels; without: the
    policy's own namespace)."""
    chosen = [p for p in policies if p["metadata"].get("namespace", target[0]) == target[0]  # none: kubectl's
              and _matches(p["spec"]["podSelector"], target[1]) and "Ingress" in p["spec"]["policyTypes"]]
    if not chosen:
        return True
    for p in chosen:
        for rule in p["spec"].get("ingress", []):
            if rule.get("ports") and port not in [pt["port"] for pt in rule["ports"]]:
                continue
            for peer_sel in rule.get("from", []):
                assert "ipBlock" not in peer_sel
                if "namespaceSelector" in peer_sel:
                    ns_ok = _matches(peer_sel["namespaceSelector"], {NAMESPACE_LABEL: peer[0]})
                else:
                    ns_ok = peer[0] == p["metadata"].get("namespace", target[0])
                if ns_ok and _matches(peer_sel.get("podSelector", {}), peer[1]):
                    return True
    return False


def _policies():
    return _kind(_k8s_docs("rayjob.yaml"), "NetworkPolicy") + _kind(_k8s_docs("mlflow.yaml"), "NetworkPolicy")


def _pod_templates():
    job = _kind(_k8s_docs("rayjob.yaml"), "RayJob")[0]
    cluster = job["spec"]["rayClusterSpec"]
    deploy = _kind(_k8s_docs("mlflow.yaml"), "Deployment")[0]
    return job, cluster["headGroupSpec"]["template"], [g["template"] for g in cluster["workerGroupSpecs"]], \
        deploy["spec"]["template"]


def test_network_policy_peers_are_pinned_by_namespace_and_by_labels_only_operators_set():
    """Every peer names its namespace (a label the API server sets) and selects pods only by
    labels an operator writes on the pods it creates, none of which raygan's templates set."""
    _, head, workers, mlflow = _pod_templates()
    own = set()
    for t in [head, *workers, mlflow]:
        own |= set(t["metadata"].get("labels", {}))
    assert not own & OPERATOR_LABELS, own & OPERATOR_LABELS  # the templates cannot give them
    policies = _policies()
    assert len(policies) >= 3
    for p in policies:
        assert p["metadata"]["namespace"] == "raygan"
        for rule in p["spec"]["ingress"]:
            for peer in rule["from"]:
                assert set(peer) == {"namespaceSelector", "podSelector"}, peer  # no ipBlock, no bare selector
                ns = peer["namespaceSelector"]
                assert list(ns.get("matchLabels", {})) == [NAMESPACE_LABEL] and not ns.get("matchExpressions"), ns
                pods = peer["podSelector"].get("matchLabels", {})
                assert pods and set(pods) <= OPERATOR_LABELS, pods
        for key in p["spec"]["podSelector"]["matchLabels"]:  # whom a policy protects: also by those labels
            assert key in OPERATOR_LABELS or key.startswith("app.kubernetes.io/"), key


def test_network_policies_admit_kuberays_pods_and_no_lookalike_from_elsewhere():
    """The pods KubeRay, the Job controller and the operator's chart make get in where they must;
    the RayJob's template labels alone, and the same labels in another namespace, do not."""
    job, head, workers, mlflow = _pod_templates()
    ns = job["metadata"].get("namespace", "default")
    name = job["metadata"]["name"]
    kuberay = {"ray.io/is-ray-node": "yes", "app.kubernetes.io/created-by": "kuberay-operator",
               "app.kubernetes.io/name": "kuberay", "ray.io/cluster": f"{name}-x7k2p"}  # KubeRay's labelPod
    ray_head = (ns, {**head["metadata"]["labels"], **kuberay, "ray.io/node-type": "head", "ray.io/group": "headgroup"})
    ray_worker = (ns, {**workers[0]["metadata"]["labels"], **kuberay, "ray.io/node-type": "worker", "ray.io/group": "gpu"})
    submitter = (ns, {"batch.kubernetes.io/job-name": name, "job-name": name})
    operator = ("kuberay-system", {"app.kubernetes.io/name": "kuberay-operator", "app.kubernetes.io/instance": "kuberay-operator"})
    mlflow_pod = (ns, dict(mlflow["metadata"]["labels"]))
    template_only = (ns, dict(workers[0]["metadata"]["labels"]))  # a pod made from the template, not by KubeRay
    elsewhere = [("other", dict(ray_worker[1])), ("other", dict(submitter[1])), ("other", dict(operator[1])),
                 (ns, dict(operator[1]))]  # the operator's label on a pod of raygan's namespace
    policies = _policies()
    for port in (6379, 8076, 10001, 52365, 8265):
        assert _admits(policies, ray_head, ray_worker, port) and _admits(policies, ray_worker, ray_head, port)
    assert _admits(policies, ray_head, submitter, 8265) and _admits(policies, ray_head, operator, 8265)
    assert not _admits(policies, ray_head, submitter, 6379) and not _admits(policies, ray_worker, submitter, 8265)
    assert _admits(policies, mlflow_pod, ray_worker, 5000) and _admits(policies, mlflow_pod, ray_head, 5000)
    assert not _admits(policies, mlflow_pod, submitter, 5000)
    for outsider in [template_only, mlflow_pod, *elsewhere]:
        for target, port in ((ray_head, 6379), (ray_head, 8265), (ray_worker, 6379), (mlflow_pod, 5000)):
            assert not _admits(policies, target, outsider, port), (outsider, target, port)


def test_k8s_mlflow_speaks_tls_and_ray_pods_hold_the_jobs_user_and_the_certificate_only():
    job, head, workers, mlflow = _pod_templates()
    server = _containers(mlflow)[0]
    args = " ".join(server["args"])
    assert "--app-name basic-auth" in args and "NO_PERMISSIONS" in args and "umask 077" in args
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY=$(" in args
    assert '--uvicorn-opts "--ssl-certfile /tls/tls.crt --ssl-keyfile /tls/tls.key"' in args
    assert {"name": "tls", "secret": {"secretName": "raygan-mlflow-tls"}} in mlflow["spec"]["volumes"]
    admin = [_secret_env(server, v)["name"] for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")]
    jobs_user = [_secret_env(server, v)["name"] for v in ("RAYGAN_JOB_USERNAME", "RAYGAN_JOB_PASSWORD")]
    assert set(admin) == {"raygan-mlflow-admin"} and set(jobs_user) == {"raygan-mlflow"}
    post = " ".join(server["lifecycle"]["postStart"]["exec"]["command"])
    assert "raygan.distributed.mlflow_users --uri https://localhost:5000" in post and "--edit raygan" in post
    assert {e["name"]: e.get("value") for e in server["env"]}["MLFLOW_TRACKING_SERVER_CERT_PATH"] == "/tls/tls.crt"
    svc = _kind(_k8s_docs("mlflow.yaml"), "Service")[0]
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert env["MLFLOW_TRACKING_URI"] == f"https://{svc['metadata']['name']}:5000"
    rayjob_text = (ROOT / "k8s" / "rayjob.yaml").read_text()
    assert "raygan-mlflow-admin" not in rayjob_text and "raygan-mlflow-tls" not in rayjob_text  # no admin, no key
    for t in [head, *workers]:
        c = _containers(t)[0]
        assert {_secret_env(c, v)["name"] for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")} == \
            {"raygan-mlflow"}
        cert = {e["name"]: e.get("value") for e in c["env"]}["MLFLOW_TRACKING_SERVER_CERT_PATH"]
        mount = next(m for m in c["volumeMounts"] if cert.startswith(m["mountPath"] + "/"))
        volume = next(v for v in t["spec"]["volumes"] if v["name"] == mount["name"])
        assert volume == {"name": mount["name"], "configMap": {"name": "raygan-mlflow-ca"}}
    assert "--from-file=ca.crt=tls/mlflow.crt" in (ROOT / "k8s" / "mlflow.yaml").read_text()  # the certificate only


# ---------------------------------------------------------------------------- the head's MLflow, run
def _status(url, auth=None, cafile=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def heads_mlflow(cluster_config, tmp_path_factory):
    """cluster.yaml's own commands, run here as the head would run them, with local paths, a free
    port, one server worker (not 4: a small machine) and `localhost` for `raygan-mlflow` (no
    /etc/hosts edit): the header's openssl command
    makes the certificate, setup_commands' ~/.raygan_env, then the MLflow server command and the
    command that makes the jobs' user. Skipped without mlflow[auth]'s Flask-WTF."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF)")
    c = cluster_config
    home = tmp_path_factory.mktemp("head")
    port = free_port()

    def local(cmd):
        return (cmd.replace("/home/ubuntu/", f"{home}/").replace("s3://$RAYGAN_BUCKET/mlflow", str(home / "artifacts"))
                .replace("--port 5000", f"--workers 1 --port {port}").replace("raygan-mlflow:5000", f"localhost:{port}"))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAYGAN_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))

    def run(cmd, timeout=60):
        return subprocess.run(["bash", "-c", cmd], env=env, cwd=home, capture_output=True, text=True, timeout=timeout)

    job = ("raygan-job", "pw-" + os.urandom(8).hex())
    (home / ".raygan").mkdir()
    (home / ".raygan" / "cluster_secrets").write_text(f"MLFLOW_TRACKING_USERNAME={job[0]}\nMLFLOW_TRACKING_PASSWORD={job[1]}\n")
    (home / ".raygan_secrets").symlink_to(home / ".raygan" / "cluster_secrets")  # what file_mounts copy
    (home / ".raygan_tls").symlink_to(home / ".raygan" / "tls")
    (home / ".raygan" / "tls").mkdir()
    made = run(_header_command(c, "(umask 077; openssl req"))
    assert made.returncode == 0, made.stderr
    env_cmd = local(next(cmd for cmd in c["setup_commands"] if "~/.raygan_env" in cmd))
    assert run(env_cmd).returncode == 0
    shell = subprocess.Popen(["bash", "-c", local(_mlflow_command(c))], env=env, cwd=home, start_new_session=True)
    try:
        shell.wait(timeout=60)  # backgrounds the server and returns
        users = run(local(_job_user_command(c)), timeout=420)
        assert users.returncode == 0, users.stderr[-2000:] + (home / "mlflow" / "server.log").read_text()[-2000:]
        yield {"home": home, "port": port, "job": job, "cert": str(home / ".raygan" / "tls" / "mlflow.crt"),
               "admin": ("admin", (home / "mlflow" / "admin_password").read_text().strip())}
    finally:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 0)):  # the server and its workers: this session's
            try:
                os.killpg(shell.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(wait)


def test_the_heads_mlflow_speaks_only_https_with_the_users_certificate(heads_mlflow):
    m = heads_mlflow
    assert _status(f"https://localhost:{m['port']}/health", cafile=m["cert"]) == 200
    with pytest.raises(urllib.error.URLError):  # a server that is not the certificate's is refused
        _status(f"https://localhost:{m['port']}/health")  # (checked against the system's CAs only)
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        _status(f"http://localhost:{m['port']}/health")  # no plain HTTP: a password would cross in clear
    key = m["home"] / ".raygan" / "tls" / "mlflow.key"  # the header's umask 077
    assert key.stat().st_mode & 0o077 == 0


def test_the_heads_mlflow_command_refuses_requests_without_the_password(heads_mlflow):
    """No credentials or wrong ones get 401, the jobs' user gets in, the auth config and the admin's
    password drawn on the head are mode 600."""
    m = heads_mlflow
    url = f"https://localhost:{m['port']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(url, cafile=m["cert"]) == 401
    assert _status(url, (m["job"][0], "wrong"), cafile=m["cert"]) == 401
    assert _status(url, m["job"], cafile=m["cert"]) == 200
    assert _status(url, m["admin"], cafile=m["cert"]) == 200
    for f in ("basic_auth.ini", "admin_password"):
        assert (m["home"] / "mlflow" / f).stat().st_mode & 0o077 == 0, f
    assert len(m["admin"][1]) >= 32 and m["admin"][1] not in (m["home"] / ".raygan_env").read_text()


def test_the_jobs_mlflow_user_is_no_admin_and_reaches_only_what_it_is_granted(heads_mlflow):
    """As the jobs' user: logs runs to `raygan` (EDIT) but cannot delete it; sees nothing of an
    experiment the admin made; cannot make users; owns the experiments it creates."""
    m = heads_mlflow
    base = f"https://localhost:{m['port']}/api/2.0/mlflow"
    ctx = ssl.create_default_context(cafile=m["cert"])

    def call(path, body, auth):
        req = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        req.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, {}

    def get(path, auth):
        req = urllib.request.Request(f"{base}/{path}")
        req.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, {}

    job, admin = m["job"], m["admin"]
    code, user = get(f"users/get?username={job[0]}", admin)
    assert code == 200 and user["user"]["is_admin"] is False
    code, exp = get("experiments/get-by-name?experiment_name=raygan", job)
    assert code == 200  # --edit raygan: made by the admin, open to the jobs' user
    raygan_id = exp["experiment"]["experiment_id"]
    code, run = call("runs/create", {"experiment_id": raygan_id}, job)
    assert code == 200
    assert call("runs/log-metric", {"run_id": run["run"]["info"]["run_id"], "key": "fid", "value": 1.0,
                                    "timestamp": 0, "step": 0}, job)[0] == 200
    assert call("experiments/delete", {"experiment_id": raygan_id}, job)[0] == 403  # EDIT, not MANAGE
    code, private = call("experiments/create", {"name": "admins-own"}, admin)
    assert code == 200
    assert get(f"experiments/get?experiment_id={private['experiment_id']}", job)[0] == 403  # NO_PERMISSIONS
    assert call("users/create", {"username": "intruder", "password": "pw-intruder-123"}, job)[0] == 403
    code, mine = call("experiments/create", {"name": "jobs-own"}, job)
    assert code == 200 and get(f"experiments/get?experiment_id={mine['experiment_id']}", job)[0] == 200
