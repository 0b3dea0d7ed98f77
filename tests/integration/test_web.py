"""Runs the teaching page's browser test (tests/web/test_page.mjs: headless Chromium driven by
playwright-core) as part of `make test`, when Chromium, node and the npm package are installed
(`make test-web` installs them); skipped otherwise."""
import os
import shutil
import subprocess

import pytest

import harness

WEB_TESTS = os.path.join(harness.ROOT, "tests", "web")
NEEDS = [("/usr/bin/chromium", os.path.exists("/usr/bin/chromium")),
         ("node", shutil.which("node") is not None),
         ("tests/web/node_modules/playwright-core",
          os.path.isdir(os.path.join(WEB_TESTS, "node_modules", "playwright-core")))]
MISSING = [name for name, ok in NEEDS if not ok]


@pytest.mark.skipif(bool(MISSING), reason="needs " + ", ".join(MISSING) + " (make test-web)")
def test_teaching_page_in_chromium(tmp_path):
    env = dict(os.environ, AUTH_BIN=harness.BIN, SCREENSHOT=str(tmp_path / "screenshot.png"))
    p = subprocess.run(["node", os.path.join(WEB_TESTS, "test_page.mjs")], env=env,
                       capture_output=True, text=True, timeout=300)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines and lines[-1].endswith(" 0 failed"), p.stdout + p.stderr
    assert (tmp_path / "screenshot.png").stat().st_size > 10000
