"""The ``instdecay`` command line: thin subcommands over the library."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="instdecay", description=__doc__)
    parser.add_argument("--version", action="version", version=f"instdecay {__version__}")
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
