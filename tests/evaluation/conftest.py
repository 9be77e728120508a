"""The converse-compare run shared by the report tests (tests/evaluation/compare_fixture.py), made once."""
import os

import pytest

from tests.evaluation.compare_fixture import run_compare


@pytest.fixture(scope='session')
def report_run(tmp_path_factory):
    """The shared run, from its own folder: results_root comes from the YAML only, so nothing may go to ./results."""
    root = tmp_path_factory.mktemp('report')
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return run_compare(root)
    finally:
        os.chdir(cwd)
