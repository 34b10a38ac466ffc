"""Print dependencies pinned at their declared floors (``name>=x`` -> ``name==x``; exact pins kept), for the CI job
that installs the minimum versions and tests them: the core dependencies, or with ``--extra NAME`` an extra's."""

import argparse
import re
import tomllib
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--extra", help="an optional-dependencies group instead of the core dependencies")
args = parser.parse_args()
project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
for requirement in project["optional-dependencies"][args.extra] if args.extra else project["dependencies"]:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:>=|==)([0-9.]+)", requirement).groups()
    print(f"{name}=={floor}")
