"""Where raygan keeps what it can rebuild (reference statistics, downloads): one rule for all.

`$RAYGAN_CACHE` when set, else `$XDG_CACHE_HOME/raygan`, else `~/.cache/raygan`.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("RAYGAN_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(base).expanduser() / "raygan"
