"""Logging and loading models without pickle.

A logged model is a folder of two files in the run's artifacts:

    <name>/spec.json     task, the run's config, the model spec, the network name, versions
    <name>/weights.pt    the network's state dict (tensors only)

Loading downloads the folder, rebuilds the network from raygan's registries with the spec's
config (so a spec naming an unknown architecture is refused, not executed) and loads the
weights with `torch.load(weights_only=True)`: a tampered `weights.pt` holding a pickle with a
`__reduce__` payload is rejected before any code in it runs. Registered versions point at the
folder (`models:/NAME/VERSION`, `models:/NAME@champion`).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.errors import RayganError
from raygan.tracking.store import first_line

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.pt"
FORMAT = "raygan-model-v1"
ARTIFACT = "model"


class ModelLoadError(RayganError):
    """A model URI that cannot be loaded safely."""


@dataclass
class LoggedModel:
    model_uri: str  # runs:/<run>/model
    registered: Optional[str] = None  # models:/NAME/VERSION
    version: Optional[str] = None


def versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("raygan", "torch", "torchvision"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def log_model(client, run_id: str, exported, register_as: Optional[str] = None,
              tags: Optional[Dict[str, str]] = None) -> LoggedModel:
    """Log an `ExportedModel` (module + spec) to the run; register it under `register_as`."""
    import torch

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / ARTIFACT
        folder.mkdir()
        spec = {"format": FORMAT, **exported.spec, "versions": versions()}
        (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True, default=str))
        sd = {k: v.detach().cpu() for k, v in exported.module.state_dict().items()}
        torch.save(sd, folder / WEIGHTS_FILE)
        client.log_artifacts(run_id, str(folder), ARTIFACT)
    out = LoggedModel(model_uri=f"runs:/{run_id}/{ARTIFACT}")
    client.set_tag(run_id, "raygan.model_uri", out.model_uri)
    if register_as:
        try:
            client.create_registered_model(register_as)
        except Exception:  # exists already
            pass
        source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{ARTIFACT}"
        mv = client.create_model_version(register_as, source, run_id=run_id, tags=tags or {})
        out.version = str(mv.version)
        out.registered = f"models:/{register_as}/{out.version}"
        client.set_tag(run_id, "raygan.registered_model", out.registered)
    return out


def _download(uri: str, tracking_uri: str) -> Path:
    import mlflow.artifacts

    dest = Path(tempfile.mkdtemp(prefix="raygan-model-"))
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest),
                                                        tracking_uri=tracking_uri))
    except Exception as e:
        raise ModelLoadError(f"cannot fetch model {uri}: {first_line(e)}") from None


def read_spec(spec_file: Path, uri: str) -> Dict[str, Any]:
    """A model's spec.json as untrusted input: at most 1 MiB of UTF-8 JSON, an object holding a
    `config` object and a `model_spec` object, nested and sized within raygan.config.safe's bounds."""
    from raygan.config.safe import check_tree, read_limited
    from raygan.tasks.loading import check_model_spec

    where = f"model {uri}: its {SPEC_FILE}"
    text = read_limited(spec_file, where, ModelLoadError)
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ModelLoadError(f"{where} is not valid JSON ({first_line(e)[:80]})") from None
    if not isinstance(spec, dict):
        raise ModelLoadError(f"{where} is not a model spec (a JSON object expected, got {type(spec).__name__})")
    check_tree(spec, where, ModelLoadError)
    for key in ("config", "model_spec"):
        if not isinstance(spec.get(key), dict):
            raise ModelLoadError(f"{where} has no '{key}' object")
    try:
        check_model_spec(spec["model_spec"], f"model {uri}")
    except RayganError as e:
        raise ModelLoadError(str(e)) from None
    return spec


def load_model_uri(uri: str, tracking_uri: str, expect_task: Optional[str] = None):
    """(module in eval mode, spec) of a logged or registered raygan model; never unpickles."""
    import torch

    from raygan.config import build_config
    from raygan.errors import ConfigError
    from raygan.tasks.loading import build_exported
    from raygan.tracking.store import open_client

    open_client(tracking_uri, create=False)
    folder = _download(uri, tracking_uri)
    spec_file = folder / SPEC_FILE
    if not spec_file.is_file():
        found = (folder / ARTIFACT / SPEC_FILE)
        spec_file = found if found.is_file() else spec_file
    if not spec_file.is_file():
        raise ModelLoadError(f"model {uri} is not a raygan model ({SPEC_FILE} missing): models logged by older "
                             f"raygan versions (pickle format) are not loaded, for safety")
    spec = read_spec(spec_file, uri)
    try:
        cfg = build_config(spec["config"])
    except ConfigError as e:
        raise ModelLoadError(f"model {uri}: its {SPEC_FILE} is unusable ({first_line(e)})") from None
    if spec.get("format") != FORMAT:
        raise ModelLoadError(f"model {uri}: unknown format {spec.get('format')!r} (expected {FORMAT})")
    if expect_task is not None and cfg.task != expect_task:
        raise ModelLoadError(f"model {uri} is a '{cfg.task}' model; this command needs a '{expect_task}' model")
    try:
        sd = torch.load(spec_file.parent / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(f"model {uri}: {WEIGHTS_FILE} is not a plain tensor file, refused "
                             f"({first_line(e)[:120]})") from None
    if not isinstance(sd, dict):
        raise ModelLoadError(f"model {uri}: {WEIGHTS_FILE} does not hold a state dict")
    try:
        module = build_exported(cfg, spec["model_spec"], sd, uri)
    except RayganError as e:
        raise ModelLoadError(f"model {uri}: {e}") from None
    return module, spec
