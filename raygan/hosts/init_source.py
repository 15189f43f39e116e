"""Where `--init-from` (train.init_from) takes its weights: resolved by the host on every rank
alike, before the run writes anything, into raygan.tasks.transfer.InitWeights.

* a run dir (local or a storage URI): its latest checkpoint: G, G_ema and D;
* a checkpoint dir (`.../checkpoints/ckpt-<nimg>`): that checkpoint;
* a model URI (`models:/NAME/VERSION`, `models:/NAME@alias`, `runs:/ID/model`) or a model folder:
  the logged generator (for G and G_ema, the EMA one when the run kept it) and, when the run that
  logged it still has its run dir with a checkpoint, that checkpoint's D (else D starts fresh,
  and the run says so).

Everything is only read (checkpoints with weights_only, models without pickle); a missing source,
one of another task or architecture is one line. What the new run records: `train.init_from` in
its params, and MLflow tags `raygan.init_from`, `raygan.init_from_checkpoint` and, where known,
`raygan.init_from_run_id` (the source's MLflow run).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from raygan.errors import ConfigError, RunDirError
from raygan.hosts import storage
from raygan.hosts.runstore import RunStore
from raygan.tasks.transfer import InitWeights, check_source, from_checkpoint

MODEL_SCHEMES = ("models:/", "runs:/")


def absolute(source: str) -> str:
    """A local source as an absolute path (Ray workers run elsewhere); URIs as given."""
    if source.startswith(MODEL_SCHEMES) or storage.is_uri(source):
        return source
    return str(Path(source).expanduser().resolve())


def resolve_init(cfg) -> Optional[InitWeights]:
    """The weights `cfg.train.init_from` names, checked against this run's config; None without one."""
    source = cfg.train.init_from
    if not source:
        return None
    init = load_source(source, cfg.tracking.uri)
    check_source(cfg, init)
    return init


def load_source(source: str, tracking_uri: Optional[str] = None) -> InitWeights:
    """The weights and config `source` names, not yet checked against a run (`raygan augment
    --init-from` builds its runs' config from the source's own)."""
    if source.startswith(MODEL_SCHEMES) or (not storage.is_uri(source) and _is_model_folder(Path(source))):
        return _from_model(tracking_uri, source)
    return _from_run(source)


def _is_model_folder(p: Path) -> bool:
    from raygan.tracking.models import SPEC_FILE

    return (p / SPEC_FILE).is_file() or (p / "model" / SPEC_FILE).is_file()


def _from_run(source: str) -> InitWeights:
    from raygan.engine.checkpoint import STATE_FILE

    if not storage.is_uri(source) and (Path(source) / STATE_FILE).is_file():  # a checkpoint dir itself
        init = from_checkpoint(Path(source), source)
        init.lineage = {"raygan.init_from": source, "raygan.init_from_checkpoint": source}
        return init
    store = RunStore(source)
    if not store.holds_run():
        raise RunDirError(f"--init-from {source}: no run there (give a run dir, a checkpoint dir or "
                          f"models:/NAME/VERSION)")
    ckpt = store.latest_checkpoint()
    if ckpt is None:
        raise RunDirError(f"--init-from {source}: the run has no checkpoint yet")
    with store.local_checkpoint(ckpt) as d:
        init = from_checkpoint(d, source)
    init.origin = ckpt
    init.lineage = {"raygan.init_from": source, "raygan.init_from_checkpoint": ckpt}
    run_id = _record_run_id(store)
    if run_id:
        init.lineage["raygan.init_from_run_id"] = run_id
    return init


def _record_run_id(store: RunStore) -> Optional[str]:
    try:
        return store.read_record().get("run_id")
    except RunDirError:
        return None


def _from_model(tracking_uri: Optional[str], uri: str) -> InitWeights:
    from raygan.tracking.models import SPEC_FILE, ModelLoadError, model_files, read_spec, read_weights
    from raygan.tracking.store import resolve_tracking_uri

    tracking = resolve_tracking_uri(tracking_uri)
    with model_files(uri, tracking) as folder:
        if not (folder / SPEC_FILE).is_file():
            raise ModelLoadError(f"--init-from {uri}: not a raygan model ({SPEC_FILE} missing)")
        spec = read_spec(folder / SPEC_FILE, uri)
        sd = read_weights(folder, f"--init-from {uri}")
    init = InitWeights(uri, spec["config"], {"G": sd, "G_ema": sd}, dict(spec["model_spec"]), uri,
                       {"raygan.init_from": uri, "raygan.init_from_checkpoint": uri})
    run_id, run_dir = _model_run(uri, tracking)
    if run_id:
        init.lineage["raygan.init_from_run_id"] = run_id
    try:  # D from the run that logged the model, when its run dir is still there
        full = _from_run(run_dir) if run_dir else None
    except (RunDirError, ConfigError, OSError):
        full = None
    if full is not None and "D" in full.networks and _same_model(full.config, init.config):
        init.networks["D"] = full.networks["D"]
        init.lineage["raygan.init_from_checkpoint"] = full.origin
    else:
        print(f"raygan: --init-from {uri}: the model holds only its generator and its run's checkpoint is not "
              f"reachable: D starts fresh", file=sys.stderr, flush=True)
    return init


def _same_model(a, b) -> bool:
    return (a.get("model") or {}) == (b.get("model") or {}) and (a.get("data") or {}).get("resolution") == \
        (b.get("data") or {}).get("resolution")


def _model_run(uri: str, tracking: str):
    """(MLflow run id, its raygan.run_dir tag) of the run that logged a model URI; (None, None) if unknown."""
    try:
        from raygan.tracking.store import open_client

        client = open_client(tracking, create=False)
        if uri.startswith("runs:/"):
            run_id = uri[len("runs:/"):].split("/", 1)[0]
        else:
            ref = uri[len("models:/"):].strip("/")
            if "@" in ref:
                name, alias = ref.split("@", 1)
                run_id = client.get_model_version_by_alias(name, alias).run_id
            else:
                name, version = ref.rsplit("/", 1)
                run_id = client.get_model_version(name, version).run_id
        return run_id, client.get_run(run_id).data.tags.get("raygan.run_dir") or None
    except Exception:
        return None, None
