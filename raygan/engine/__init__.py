"""The training engine: one loop, hosted by a plain process, a Ray Train worker or a Tune trial.

Imports neither Ray nor MLflow; it talks to its host through a Reporter.
"""
