"""Runs every C unit-test case (tests/unit/test_*.c) as its own pytest item."""
import os
import subprocess
import pytest

UNIT = os.environ.get("AUTH_UNIT", os.path.join(os.path.dirname(__file__), "..", "build", "release", "tests"))


def _cases():
    out = []
    if not os.path.isdir(UNIT):
        return out
    for name in sorted(os.listdir(UNIT)):
        path = os.path.join(UNIT, name)
        if not name.startswith("test_") or not os.access(path, os.X_OK) or os.path.isdir(path):
            continue
        listed = subprocess.run([path, "--list"], capture_output=True, text=True, timeout=30, check=True)
        out += [pytest.param(path, case, id=f"{name}::{case}") for case in listed.stdout.split()]
    return out


def test_unit_binaries_exist():
    assert _cases(), f"no unit-test binaries in {UNIT}: run make first"


@pytest.mark.parametrize("binary,case", _cases())
def test_unit(binary, case):
    res = subprocess.run([binary, case], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
