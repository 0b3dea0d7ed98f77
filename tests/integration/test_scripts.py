"""Every script in scripts/ treats its command line like the C programs do: --help exits 0, and an
option given without its value, or with a bad one, is one line on stderr and exit 2, at once (an
option left without its value used to spin at 100% CPU). The options are read from each script's
own --help, so a new option is tested without anyone listing it here."""
import os
import re
import subprocess

import pytest

import harness

SCRIPTS = os.path.join(harness.ROOT, "scripts")
# What stands in for a usage line's positional words, so that the option parsing is reached.
PLACEHOLDERS = {"VARIANT": "session-memory", "NAME": "app1"}
# Scripts whose only arguments are positional; each gets its own bad command lines below.
POSITIONAL = {"bench_balancer.sh", "deps.sh", "fuzz.sh", "hardening.sh", "mkcert.sh"}
# Sourced or imported by the others, not run.
LIBRARIES = {"lib.sh", "proxyconf.sh", "cli.py"}


def run(args, cwd, timeout=20):
    env = dict(os.environ, AUTH_BIN=os.path.join(str(cwd), "no-bin"), NO_COLOR="1")
    if args[0].endswith(".py"):
        args = ["/usr/bin/python3", *args]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def usage_commands(script):
    """(prefix words, [options that take a value]) for each command of the script's usage text."""
    text = subprocess.run([os.path.join(SCRIPTS, script), "--help"] if not script.endswith(".py")
                          else ["/usr/bin/python3", os.path.join(SCRIPTS, script), "--help"],
                          capture_output=True, text=True, timeout=20).stdout
    commands = []
    for line in text.splitlines():
        m = re.match(r"\s*(?:usage:\s*)?(?:scripts/)?" + re.escape(script) + r"\b(.*)", line, re.I)
        if m:
            rest = m.group(1)
            prefix = [PLACEHOLDERS.get(w, w) for w in re.split(r"\s+", rest.split("[")[0].split("--")[0].strip()) if w]
            commands.append((prefix, []))
        elif commands and re.match(r"\s+\[?--", line):
            rest = line
        else:
            continue
        # An option with a value is written `--name VALUE` (VALUE upper case, a choice a|b, or quoted).
        commands[-1][1].extend(re.findall(r"(--[a-z][a-z-]*)[ =](?=[A-Z\"]|[a-z]+\|)", rest))
    return commands


def value_options():
    cases = []
    for script in sorted(os.listdir(SCRIPTS)):
        if script in POSITIONAL | LIBRARIES or not script.endswith((".sh", ".py")):
            continue
        for prefix, options in usage_commands(script):
            cases += [(script, prefix, o) for o in dict.fromkeys(options)]
    return cases


CASES = value_options()


def test_every_script_is_covered():
    scripts = {s for s in os.listdir(SCRIPTS) if s.endswith((".sh", ".py"))}
    with_options = {c[0] for c in CASES}
    assert scripts - POSITIONAL - LIBRARIES == with_options, "a script whose --help shows no option with a value"
    # The ones the issue named, so that the help parsing above cannot quietly find nothing.
    for want in [("demo.sh", "--lesson"), ("demo.sh", "--instances"), ("demo.sh", "--balancer"),
                 ("web.sh", "--port"), ("cluster.sh", "--dir"), ("bench.sh", "--rounds"),
                 ("webdemo.py", "--listen")]:
        assert want in {(c[0], c[2]) for c in CASES}, want


def one_line_usage_error(r, *words):
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("script,prefix,option", CASES,
                         ids=[" ".join([s, *p, o]) for s, p, o in CASES])
def test_option_without_value(tmp_path, script, prefix, option):
    r = run([os.path.join(SCRIPTS, script), *prefix, option], tmp_path)
    one_line_usage_error(r, option)


@pytest.mark.parametrize("args,word", [
    (["demo.sh", "--lesson", "9"], "--lesson"),
    (["demo.sh", "--instances", "1"], "--instances"),
    (["demo.sh", "--balancer", "traefik"], "--balancer"),
    (["demo.sh", "--lesson", ""], "--lesson"),
    (["web.sh", "up", "--port", "70000"], "--port"),
    (["web.sh", "up", "--port", "x"], "--port"),
    (["cluster.sh", "up", "jwt-hs256", "--port", "65536"], "--port"),
    (["cluster.sh", "up", "jwt-hs256", "--instances", "x"], "--instances"),
    (["bench.sh", "--balancer", "traefik"], "--balancer"),
    (["bench.sh", "--rounds", "x"], "'x'"),
    (["bench.sh", "--variants", "nope"], "nope"),
    (["bench_servers.sh", "--rounds", "x"], "--rounds"),
    (["webdemo.py", "--listen", "127.0.0.1:1", "--public", "x", "--rundir", "."], "--public"),
    (["fuzz.sh"], "usage"),
    (["fuzz.sh", "build/fuzzer/fuzz"], "usage"),
    (["fuzz.sh", "build/fuzzer/fuzz", "x"], "SECONDS"),
    (["hardening.sh", "x"], "SECONDS"),
    (["hardening.sh", "1", "2"], "usage"),
    (["deps.sh", "nope"], "nope"),
    (["mkcert.sh"], "usage"),
    (["bench_balancer.sh", "--frobnicate"], "--frobnicate"),
])
def test_bad_value(tmp_path, args, word):
    r = run([os.path.join(SCRIPTS, args[0]), *args[1:]], tmp_path)
    one_line_usage_error(r, word)


@pytest.mark.parametrize("script", sorted(s for s in os.listdir(SCRIPTS)
                                          if s.endswith((".sh", ".py")) and s not in LIBRARIES))
def test_help(tmp_path, script):
    r = run([os.path.join(SCRIPTS, script), "--help"], tmp_path)
    assert r.returncode == 0 and r.stdout.strip() and not r.stderr, r
