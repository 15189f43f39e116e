"""cluster.yaml is a valid Ray cluster-launcher config (Ray's own schema and defaults), with
the pieces the docs promise; k8s/rayjob.yaml is a well-formed KubeRay RayJob."""
import copy
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


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
    assert "MLFLOW_TRACKING_URI=http://" in head_start
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in " ".join(c["worker_start_ray_commands"])
    # every start command sources the env file before `ray start`, and the shell sees it all
    for cmd in c["head_start_ray_commands"] + c["worker_start_ray_commands"]:
        if "ray start" in cmd:
            assert cmd.index("source ~/.raygan_env") < cmd.index("ray start")
            assert "#" not in cmd  # a comment in a folded command would swallow `ray start`
            shlex.split(cmd)


def test_rayjob_example():
    docs = list(yaml.safe_load_all((ROOT / "k8s" / "rayjob.yaml").read_text()))
    assert len(docs) == 1
    job = docs[0]
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
