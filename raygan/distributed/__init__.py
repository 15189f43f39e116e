"""The Ray layer: Ray Train host (train.py), Ray job submission (jobs.py), cluster checks
(cluster.py) and the `raygan submit` command (cli.py). Imports Ray lazily."""
