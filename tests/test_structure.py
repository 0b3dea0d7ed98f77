"""The structure of common/: no include circle among its modules (scripts/check_structure.py),
proven able to fail on crafted circles; jwk.c is a codec that knows nothing of tokens; the key
struct lives only in its private header."""
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check_structure.py")
COMMON = os.path.join(ROOT, "common")


def check(folder):
    return subprocess.run([sys.executable, SCRIPT, "--dir", str(folder)], capture_output=True,
                          text=True, timeout=30)


def load_script():
    spec = importlib.util.spec_from_file_location("check_structure", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_tree(folder, files):
    for name, includes in files.items():
        (folder / name).write_text("".join(f'#include "{i}"\n' for i in includes) +
                                   "#include <stdio.h>\n")


def test_common_has_no_include_circle():
    r = check(COMMON)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("no include circle among the ")


def test_check_fails_on_crafted_circles(tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    # The circle jwt.c and jwk.c had: each module's .c includes the other's .h.
    write_tree(two, {"a.c": ["a.h", "b.h"], "a.h": [], "b.c": ["b.h", "a.h"], "b.h": [],
                     "c.c": ["c.h", "a.h"], "c.h": []})
    r = check(two)
    assert r.returncode == 1, r
    assert "a -> b -> a" in r.stdout, r.stdout

    three = tmp_path / "three"
    three.mkdir()
    write_tree(three, {"x.h": ["y.h"], "y.h": [], "y.c": ["z.h"], "z_private.h": ["x.h"], "z.h": [],
                       "z.c": ["z_private.h"]})
    r = check(three)
    assert r.returncode == 1 and "x -> y -> z -> x" in r.stdout, r.stdout

    # A diamond, a module's private header and system headers are no circle.
    fine = tmp_path / "fine"
    fine.mkdir()
    write_tree(fine, {"top.c": ["top.h", "left.h", "right.h"], "left.c": ["base.h"],
                      "right.c": ["base.h", "right_private.h"], "right_private.h": ["right.h"],
                      "base.h": [], "top.h": ["missing_elsewhere.h", "top_int.h"],
                      "top_int.h": ["top.h"], "top_part.c": ["top_int.h"]})
    r = check(fine)
    assert r.returncode == 0, r.stdout

    r = check(tmp_path / "nope")
    assert r.returncode == 2 and "not a folder" in r.stderr


def test_jwk_is_a_codec_and_the_key_struct_is_private():
    graph = load_script().module_graph(COMMON)
    assert graph["jwk"] <= {"base64"}, graph["jwk"]
    assert "jwt" not in graph["jwt_key"], "keys must not depend on tokens"
    assert "jwk" in graph["jwt_key"] and "jwt_key" in graph["jwt"]
    defined = [name for name in os.listdir(COMMON)
               if "struct jwt_key {" in open(os.path.join(COMMON, name), errors="replace").read()]
    assert defined == ["jwt_key_private.h"], defined
