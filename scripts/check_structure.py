#!/usr/bin/env python3
"""Checks that the modules of a C source folder (common/ by default) include one another
without a circle. A module is a file stem: x.c, x.h and its private header (x_private.h or
x_int.h) are module x. The graph comes from the '#include "..."' lines; an include circle
means neither module can be read, tested or replaced without the other. Prints the first
circle found and exits 1, else exits 0."""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


PRIVATE_SUFFIXES = ("_private", "_int")


def module_of(filename):
    """The module a file belongs to: its stem, less a private header's suffix."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    for suffix in PRIVATE_SUFFIXES:
        if stem.endswith(suffix):
            return stem[:-len(suffix)]
    return stem


def module_graph(folder):
    """{module: set of modules it includes}, for the .c and .h files directly in folder."""
    graph = {}
    for name in sorted(os.listdir(folder)):
        if os.path.splitext(name)[1] not in (".c", ".h"):
            continue
        stem = module_of(name)
        with open(os.path.join(folder, name), errors="replace") as f:
            text = f.read()
        deps = graph.setdefault(stem, set())
        for inc in INCLUDE.findall(text):
            dep = module_of(inc)
            if dep != stem and os.path.exists(os.path.join(folder, os.path.basename(inc))):
                deps.add(dep)
    return graph


def find_cycle(graph):
    """A list of modules [a, b, ..., a] forming a circle, or None."""
    state = {}  # absent: not seen, 1: on the current path, 2: done
    path = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


USAGE = """usage: scripts/check_structure.py [--dir FOLDER]
  Fails (exit 1) on an include circle among the C modules of FOLDER (default: common/)."""


def usage_error(msg):
    print(f"check_structure.py: {msg}", file=sys.stderr)
    return 2


def main(argv):
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common")
    args = argv[1:]
    while args:
        if args[0] in ("--help", "-h"):
            print(USAGE)
            return 0
        if args[0] != "--dir":
            return usage_error(f"unknown argument '{args[0]}' (see --help)")
        if len(args) < 2 or not args[1]:
            return usage_error("--dir needs a value (see --help)")
        folder, args = args[1], args[2:]
    if not os.path.isdir(folder):
        return usage_error(f"--dir {folder}: not a folder")
    graph = module_graph(folder)
    cycle = find_cycle(graph)
    if cycle:
        print(f"include circle in {os.path.normpath(folder)}: {' -> '.join(cycle)}")
        return 1
    print(f"no include circle among the {len(graph)} modules of {os.path.normpath(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
