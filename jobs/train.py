"""Ray job entrypoint: `raygan train` with the arguments given here.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train.py --preset digits --workers 2 --storage s3://bucket/raygan

The shipped working directory comes first on sys.path, so the job runs the raygan you
submitted (not whatever version the cluster has installed). Inside a job, Ray Train
connects to the job's cluster ($RAY_ADDRESS).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from raygan.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
