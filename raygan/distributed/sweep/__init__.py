"""Hyperparameter sweeps on Ray Tune, split by job:

    options.py    SweepOptions: the `raygan tune` flags and their checks, declared once
    params.py     search-space parameters: distributions, parsing, config-path checks
    space.py      search spaces (YAML of config paths -> distributions, define-by-run)
    plan.py       SweepPlan: the typed, persisted plan (raygan-sweep.json) and the trial base config
    resources.py  how many trials fit at once
    trial.py      one trial: the shared Ray worker entry, in-process or as a TorchTrainer
    driver.py     the Tuner (Optuna TPE + ASHA), live status, resume
    champion.py   re-evaluation of the best trials and the champion model

MLflow bookkeeping (parent/child runs, champion registration) lives in raygan.tracking.sweeps.
"""
