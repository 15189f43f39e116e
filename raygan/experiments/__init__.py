"""Experiments built from the core (torch only): each returns rows plus the protocol that made
them; the CLI and MLflow layers only run and log them.

    from raygan.experiments.augment import run_augment_experiment, render_table, plot
"""
