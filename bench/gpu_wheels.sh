#!/usr/bin/env bash
# Wheels that raygan's core needs and the lent GPU machine lacks (its image has torch, numpy,
# pyyaml, pillow, pyarrow, fsspec, matplotlib, scikit-learn/-image, torchmetrics, but no pydantic),
# for CPython 3.12 on manylinux x86_64, into .whl/ (gitignored). Run HERE (it needs a package
# index), before the GPU call; bench/gpu_acceptance.py installs them to /tmp/site there when
# `import pydantic` fails. Versions pinned to what the dev venv runs; one version of each.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0
ls -l .whl
