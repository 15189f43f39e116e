"""Where a loop runs and what it writes.

    local.py     a training run in this process (console + MLflow reporters, signals, lock)
    runstore.py  the one owner of a run directory: config, record, lock, checkpoints, samples
    storage.py   atomic writes, moves and free-space checks under a run directory

The Ray host (raygan.distributed.worker) builds on these; nothing here imports Ray.
"""
