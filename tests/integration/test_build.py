"""The build as a new user meets it: plain `make` in a clean copy of the tree (the files git tracks,
as they are in the working tree, nothing built) puts every program into bin/."""
import os
import shutil
import subprocess

import pytest

from harness import ROOT

PROGRAMS = ("session_server", "jwt_server", "balancer", "loadgen", "authctl")
# What the surrounding `make test` or the caller's shell would otherwise pass down to the inner make.
INHERITED = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SANITIZER", "BUILD", "BIN", "V",
             "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDLIBS", "CC")


def tracked_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f]


@pytest.mark.skipif(shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")),
                    reason="needs git and a checkout")
def test_plain_make_builds_every_program_into_bin(tmp_path):
    tree = tmp_path / "clone"
    for f in tracked_files():
        src = os.path.join(ROOT, f)
        if os.path.lexists(src):
            os.makedirs(os.path.dirname(tree / f), exist_ok=True)
            shutil.copy2(src, tree / f, follow_symlinks=False)
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    r = subprocess.run(["make"], cwd=tree, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    missing = [p for p in PROGRAMS if not os.access(tree / "bin" / p, os.X_OK)]
    assert not missing, f"plain make did not build {missing}:\n{r.stdout[-2000:]}"
