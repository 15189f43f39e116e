"""Logging and loading models without pickle.

A logged model is a folder of two files in the run's artifacts:

    <name>/spec.json     task, the run's config, the model spec, the network name, versions
    <name>/weights.pt    the network's state dict (tensors only)

Loading fetches those two files only (into a temp dir removed afterwards; a local folder is
read in place), rebuilds the network from raygan's registries with the spec's
config (so a spec naming an unknown architecture is refused, not executed) and loads the
weights with `torch.load(weights_only=True)`: a tampered `weights.pt` holding a pickle with a
`__reduce__` payload is rejected before any code in it runs. Registered versions point at the
folder (`models:/NAME/VERSION`, `models:/NAME@champion`).
"""
from __future__ import annotations

import json
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional
from urllib.parse import unquote

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


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@contextmanager
def model_files(uri: str, tracking_uri: str) -> Iterator[Path]:
    """A folder holding the model's spec.json and weights.pt, and nothing else of its store.

    A local directory is read where it is (nothing copied). Any other URI (runs:/, models:/, a
    storage URI) has just those two files downloaded into a temp dir, removed afterwards however
    the load ends. A URI with a `..` segment is refused: it would reach outside the folder it
    names (e.g. `runs:/<id>/../..` is the whole experiment)."""
    if not _SCHEME.match(uri):
        path = Path(uri).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"cannot fetch model {uri}: no such directory")
        yield path / ARTIFACT if not (path / SPEC_FILE).is_file() and (path / ARTIFACT / SPEC_FILE).is_file() else path
        return
    if ".." in re.split(r"[/\\]", unquote(uri.split(":", 1)[1])):
        raise ModelLoadError(f"model URI {uri}: '..' is not allowed (a model URI names the model's own folder)")
    base = uri.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="raygan-model-") as d:
        folder, first_error = None, None
        for sub in (base, f"{base}/{ARTIFACT}"):  # the model folder, or a run's root holding `model/`
            try:
                _fetch(f"{sub}/{SPEC_FILE}", Path(d), tracking_uri)
                folder = sub
                break
            except Exception as e:
                first_error = first_error or e
        if folder is None:
            if not _lists_files(base, tracking_uri):
                raise ModelLoadError(f"cannot fetch model {uri}: {first_line(first_error)}") from None
            yield Path(d)  # a folder without raygan's spec: refused by the caller
            return
        try:
            _fetch(f"{folder}/{WEIGHTS_FILE}", Path(d), tracking_uri)
        except Exception as e:
            raise ModelLoadError(f"cannot fetch model {uri}: {WEIGHTS_FILE}: {first_line(e)}") from None
        yield Path(d)


def _fetch(uri: str, dest: Path, tracking_uri: str) -> None:
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=tracking_uri)


def _lists_files(uri: str, tracking_uri: str) -> bool:
    import mlflow.artifacts

    try:
        return bool(mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))
    except Exception:
        return False


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


def read_weights(folder: Path, label: str) -> dict:
    """The state dict in a model folder's WEIGHTS_FILE, loaded without unpickling; `label` starts
    each one-line error (`model URI`, `--init-from URI`)."""
    import torch

    try:
        sd = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(f"{label}: {WEIGHTS_FILE} is not a plain tensor file, refused "
                             f"({first_line(e)[:120]})") from None
    if not isinstance(sd, dict):
        raise ModelLoadError(f"{label}: {WEIGHTS_FILE} does not hold a state dict")
    return sd


def load_model_uri(uri: str, tracking_uri: str, expect_task: Optional[str] = None):
    """(module in eval mode, spec) of a logged or registered raygan model; never unpickles."""
    from raygan.tasks import build_config
    from raygan.errors import ConfigError
    from raygan.tasks.loading import build_exported
    from raygan.tracking.store import open_client

    open_client(tracking_uri, create=False)
    with model_files(uri, tracking_uri) as folder:
        spec_file = folder / SPEC_FILE
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
        sd = read_weights(folder, f"model {uri}")
    try:
        module = build_exported(cfg, spec["model_spec"], sd, uri)
    except RayganError as e:
        raise ModelLoadError(f"model {uri}: {e}") from None
    return module, spec
