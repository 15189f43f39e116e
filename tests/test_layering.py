"""The core runs in a plain Python process with only torch: it must not import Ray or MLflow."""
import subprocess
import sys

CORE = ["raygan.config", "raygan.models", "raygan.losses", "raygan.regularizers", "raygan.augment",
        "raygan.data", "raygan.metrics", "raygan.engine.checkpoint", "raygan.tasks", "raygan.trainer"]


def test_core_imports_neither_ray_nor_mlflow():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow', 'optuna'))\n"
        + "print(','.join(bad))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", f"core pulled in: {p.stdout.strip()}"


def test_core_trains_in_a_plain_process_with_ray_and_mlflow_blocked(tmp_path):
    """Make `import ray` / `import mlflow` fail outright, then train and resume with the core alone."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('ray', 'mlflow'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import torch
torch.set_num_threads(1)
from raygan.config import load_config
from raygan.trainer import Trainer
cfg = load_config('digits', None, ['train.total_kimg=0.128', 'train.tick_kimg=0.064', 'tracking.enabled=false'])
t = Trainer(cfg, {str(tmp_path / 'run')!r}, evaluator=None)
s = t.run()
print(s['kimg'])
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "0.128"
