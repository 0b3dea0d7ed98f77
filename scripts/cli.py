"""The command-line convention of the project's Python scripts, as for the C programs and the
shell scripts: --help to stdout and exit 0; a bad command line is one line on stderr and exit 2
(argparse would print its usage block too)."""
import argparse
import os
import sys


class ArgParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line: "<script>: <what> (see --help)"."""

    def error(self, message):
        sys.stderr.write(f"{os.path.basename(sys.argv[0])}: {message} (see --help)\n")
        sys.exit(2)
