"""Train a model from a BasicSR YAML: ``converse-train -opt FILE | --config NAME [--launcher pytorch|slurm]
[--auto_resume] [--check-data]`` (or ``python -m converse_basicsr.train``).

The work is in ``converse_basicsr.training.pipeline``: the option file is checked before anything is built (unknown
keys, values of the wrong kind, grayscale/RGB mismatch), ``--check-data`` decodes every training and
validation image once and lists the bad ones, and training runs BasicSR's ``train_pipeline`` with the
training fixes, checked ``--auto_resume`` and an exact resume. Experiments, logs and ``tb_logger`` go under
the current directory.
"""
import os
import sys

from converse_basicsr.training.pipeline import run_command
from converse_basicsr.utils.runtime import retain_freed_memory


def main(argv=None, root_path=None):
    """Console entry point; ``argv`` defaults to ``sys.argv[1:]``, ``root_path`` (where ``experiments/`` goes)
    to the current directory. Returns the exit status: 0, 1 when ``--check-data`` found bad images, 2 for
    a bad option file (the message names the file and the keys)."""
    retain_freed_memory()
    return run_command(sys.argv[1:] if argv is None else list(argv), root_path or os.getcwd())


if __name__ == '__main__':
    sys.exit(main())
