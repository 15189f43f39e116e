"""`raygan data prepare --ray`: the shards run as Ray Data tasks on a (local) Ray cluster and the
dataset is the same, byte for byte in content, as the local prepare's."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from raygan.data.prepare import prepare
from raygan.data.prepared import PreparedDataset

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_on_a_local_ray_cluster_equals_the_local_prepare(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(9):
            Image.fromarray(rng.integers(0, 255, (10 + i, 12, 3), dtype=np.uint8)).save(src / c / f"{i}.png")
    (src / "b" / "empty.png").write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    p = subprocess.run([sys.executable, "-m", "raygan", "data", "prepare", str(src), "--out", str(tmp_path / "ray"),
                        "--resolution", "8", "--shard-size", "4", "--ray", "--quiet"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "18 images, 3x8x8, 2 classes, 5 shards" in p.stdout and "1 skipped" in p.stdout
    local = prepare(str(src), str(tmp_path / "local"), resolution=8, shard_size=4, workers=1, progress=False)
    ray_m = PreparedDataset.open(str(tmp_path / "ray")).manifest
    assert ray_m["content_hash"] == local["content_hash"] and ray_m["labels"] == local["labels"]
    assert [s["file"] for s in ray_m["skipped"]] == ["b/empty.png"]
