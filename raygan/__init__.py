"""raygan: GAN training and tuning on Ray, tracked in MLflow.

The core (models, losses, regularizers, augment, data, metrics, engine) needs only
torch/torchvision/numpy; Ray lives in raygan.distributed, MLflow in raygan.tracking.
"""

__version__ = "0.1.0"
