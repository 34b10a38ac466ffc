"""Print the core dependencies pinned at their declared floors (``name>=x`` -> ``name==x``), for the CI job that
installs the minimum versions and smoke-tests them."""

import re
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
for requirement in project["dependencies"]:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement).groups()
    print(f"{name}=={floor}")
