"""pytest fixtures shared by the black-box tests (see harness.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


@pytest.fixture
def redis():
    r = harness.Redis()
    yield r
    r.stop()


@pytest.fixture
def users_file(tmp_path):
    return harness.make_users(str(tmp_path / "users.json"))
