import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))  # the custom envs the tests import by module name


@pytest.fixture
def tests_dir() -> Path:
    return TESTS_DIR
