"""Runs the teaching page's browser test (tests/web/test_page.mjs: headless Chromium driven by
playwright-core) as part of `make test`, which installs Chromium, node and the npm package first.
A missing piece is a failure, not a silent skip; AUTH_SKIP_BROWSER=1 skips it on purpose."""
import os
import shutil
import subprocess
import time

import pytest

import harness

WEB_TESTS = os.path.join(harness.ROOT, "tests", "web")
NEEDS = [("/usr/bin/chromium", os.path.exists("/usr/bin/chromium")),
         ("node", shutil.which("node") is not None),
         ("tests/web/node_modules/playwright-core",
          os.path.isdir(os.path.join(WEB_TESTS, "node_modules", "playwright-core")))]
MISSING = [name for name, ok in NEEDS if not ok]


@pytest.mark.skipif(os.environ.get("AUTH_SKIP_BROWSER") == "1", reason="AUTH_SKIP_BROWSER=1")
def test_teaching_page_in_chromium(tmp_path):
    assert not MISSING, "needs " + ", ".join(MISSING) + ": make test installs them (scripts/deps.sh test)"
    # As `make test-web` runs it (no SCREENSHOT): the picture goes under build/, and the
    # tracked web/screenshot.png, the README's, stays as committed.
    tracked = os.path.join(harness.ROOT, "web", "screenshot.png")
    shot = os.path.join(harness.ROOT, "build", "web", "screenshot.png")
    with open(tracked, "rb") as f:
        before = f.read()
    start = time.time()
    env = {k: v for k, v in os.environ.items() if k != "SCREENSHOT"}
    env["AUTH_BIN"] = harness.BIN
    p = subprocess.run(["node", os.path.join(WEB_TESTS, "test_page.mjs")], env=env,
                       capture_output=True, text=True, timeout=480)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines and lines[-1].endswith(" 0 failed"), p.stdout + p.stderr
    assert os.stat(shot).st_size > 10000 and os.stat(shot).st_mtime >= start - 1
    with open(tracked, "rb") as f:
        assert f.read() == before, "the browser test rewrote web/screenshot.png"
