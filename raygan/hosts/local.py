"""The local host: one plain process runs the loop, reporting to the console, the run store
(metrics.jsonl, samples) and MLflow. `raygan train` without --workers ends here; the Ray
worker's rank 0 builds the same reporters (raygan.hosts.reporters).

Nothing is written until the run can start: the run dir is checked (free or resumable,
writable), the tracking store opens and the task builds its data and networks first; a start
that fails removes the directories it created. The run dir is locked while the run lives.
"""
from __future__ import annotations

import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Optional

from raygan.config import Config
from raygan.hosts.init_source import resolve_init
from raygan.hosts.reporters import make_reporters
from raygan.hosts.runstore import RunStore, already_complete


def say(text: str) -> None:
    print(f"raygan: {text}", file=sys.stderr, flush=True)


def train_local(cfg: Config, store: RunStore, resume: bool = False, progress: bool = True) -> Dict[str, Any]:
    """Train in this process. Fresh: the run dir must not hold a run. Resume: from the latest
    checkpoint (or from the start when the run stopped before its first checkpoint)."""
    from raygan.tracking.store import preflight
    from raygan.engine.loop import Trainer

    store.check_writable()
    if resume:
        store.read_config()  # it is a run
    else:
        store.check_fresh()
    preflight(cfg)
    # --init-from: the source is read (and checked) before anything of this run is written
    init = resolve_init(cfg) if not resume else None
    with _stop_signals() as stopper, store.claim() as claim:  # in use by another process: one line, and nothing of it touched
        ckpt = None
        if resume:
            ckpt = store.latest_checkpoint()
            if ckpt is None:
                say(f"{store} has no checkpoint yet: starting it again from the beginning")
                init = resolve_init(cfg)
        else:
            store.check_fresh()  # again under the lock: a concurrent start may have won the race
        store.clean_stale()
        trainer = Trainer(cfg, store.path, init=init)  # builds data + networks: fails before anything is written
        stopper["trainer"] = trainer  # from here a first Ctrl-C/SIGTERM stops it with a checkpoint
        if ckpt is not None:
            trainer.load(Path(ckpt))
            done = already_complete(cfg, trainer.nimg, store, ckpt, say)
            if done is not None:
                return done
        store.write_config(trainer.cfg)  # as trained: fitted to a short budget (a resume keeps it)
        claim.started = True  # the run exists from here on: never removed
        return _run(trainer, trainer.cfg, store, progress, resumed=ckpt is not None,
                    lineage=init.lineage if init is not None else None)


@contextmanager
def _stop_signals():
    """Ctrl-C (SIGINT) and SIGTERM alike: once the trainer is set in the yielded dict, the first
    signal asks it to stop at the next step boundary with a checkpoint; before that, or a second
    time, they stop at once (Interrupted, a KeyboardInterrupt that knows its signal)."""
    from raygan.errors import Interrupted

    holder: Dict[str, Any] = {"trainer": None}
    if threading.current_thread() is not threading.main_thread():
        yield holder
        return

    def handle(signum, frame):
        trainer = holder["trainer"]
        if trainer is not None and trainer.stop_signal is None:
            trainer.request_stop(signum)
            say(f"{signal.Signals(signum).name}: stopping at the next step with a checkpoint "
                f"(send it again to stop at once)")
            return
        raise Interrupted(signum)

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield holder
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stopped(e: BaseException, store: RunStore) -> None:
    """Say how the run stopped, and offer --resume only when a checkpoint is there to resume from."""
    how = "terminated (SIGTERM)" if getattr(e, "signum", None) == signal.SIGTERM else "interrupted"
    ckpt = store.latest_checkpoint()
    if ckpt is not None:
        say(f"{how}; resume with: raygan train --run-dir {store} --resume  (from {ckpt})")
    else:
        say(f"{how} before its first checkpoint: nothing was saved to resume from "
            f"(raygan train --run-dir {store} --resume starts it again from the beginning)")




#: how torch.save (a C++ stream) reports a short write: ENOSPC does not reach Python as an OSError
_TORCH_WRITE_FAILED = ("file write failed", "unexpected pos", "iostream error")


def _disk_full(e: BaseException, store: RunStore) -> Optional[OSError]:
    """A checkpoint write that ran out of space, as the ENOSPC the CLI reports in one line; the
    half-written temp dir is gone already and earlier checkpoints stay."""
    if not (isinstance(e, RuntimeError) and any(m in str(e) for m in _TORCH_WRITE_FAILED)) or not store.is_local:
        return None
    import errno

    where = store.path / "checkpoints"
    free = shutil.disk_usage(store.path).free
    return OSError(errno.ENOSPC, f"no space left ({free / 2**20:.1f} MiB free)", str(where))


def _run(trainer, cfg: Config, store: RunStore, progress: bool, resumed: bool,
         lineage: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    reporter, mlflow_rep = make_reporters(cfg, store, progress, tags=lineage)
    say(f"{'resuming' if resumed else 'training'} {cfg.task} in {store}"
        + (f"  (MLflow run {mlflow_rep.run_id})" if mlflow_rep else ""))
    store.update_record(host="local", workers=1, task=cfg.task,
                        **{k.split(".", 1)[1]: v for k, v in (lineage or {}).items()})
    trainer.reporter = reporter
    try:
        summary = trainer.run()
    except BaseException as e:
        full = _disk_full(e, store)
        reporter.close(full or e)
        if full is not None:
            raise full from None
        if isinstance(e, KeyboardInterrupt):
            _stopped(e, store)
        raise
    reporter.close()
    summary["run_dir"] = str(store)
    if mlflow_rep is not None:
        summary["mlflow_run_id"] = mlflow_rep.run_id
        summary["tracking_uri"] = mlflow_rep.uri
        if mlflow_rep.model is not None:
            summary["model_uri"] = mlflow_rep.model.registered or mlflow_rep.model.model_uri
    return summary
