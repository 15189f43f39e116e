"""Ray job entrypoint: `raygan tune` with the arguments given here.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/tune.py --preset digits --samples 16 --storage s3://bucket/raygan

The shipped working directory comes first on sys.path, so the job runs the raygan you
submitted.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from raygan.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
