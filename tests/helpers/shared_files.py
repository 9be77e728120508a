"""The one place tests find ../shared (published checkpoints, kernels, reference outputs, test sets).

``CONVERSE_SHARED`` overrides the default, the ``shared`` folder beside the checkout. When a
file is missing the test is skipped on a developer machine and fails under ``CI=true``.
"""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_root():
    return Path(os.environ.get('CONVERSE_SHARED', REPO_ROOT.parent / 'shared'))


def shared_path(*parts):
    """Path of a file or folder under ../shared; skip (or fail under CI=true) when it is missing."""
    path = shared_root().joinpath(*parts)
    if not path.exists():
        message = f'{path} is missing (set CONVERSE_SHARED to the folder holding reference/ and testsets/)'
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return path
