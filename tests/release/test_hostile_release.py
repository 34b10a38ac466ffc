"""A release folder as hostile input: a FIFO or a device in place of a file never hangs a reader. Every case runs
in a child process under a 30 s timeout and must end with a one-line error (exit 2), no traceback."""

import os
import shutil
import subprocess
import sys

import pytest

CASES = {
    "validate": ["release", "validate", "{release}"],
    "push --dry-run": ["release", "push", "{release}", "me/data", "--dry-run"],
    "from-release": ["submit", "from-release", "{release}", "--task", "toy", "--split", "validation", "--size", "tiny",
                     "--out", "{tmp}/sub", "--reference", "{release}"],
    "report": ["report", "--reference", "{release}", "--out", "{tmp}/report", "--n-boot", "10"],
}
LOADERS = {
    "load_tensor": "from instdecay.loaders import load_tensor; load_tensor({release!r}, 'toy', 'validation', 'tiny')",
    "load_predictions": "from instdecay.loaders import load_predictions; load_predictions({release!r}, 'toy', "
                        "'validation')",
    "load_predictions unverified": "from instdecay.loaders import load_predictions; load_predictions({release!r}, "
                                   "'toy', 'validation', verify=False)",
}


def _release_with_fifo(tmp_path, toy_release, rel):
    out, _ = toy_release
    release = tmp_path / "hostile"
    shutil.copytree(out, release)
    (release / rel).unlink()
    os.mkfifo(release / rel)
    return release


def _run(args, code=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "instdecay.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize("rel", ["manifest.json", "data/toy/validation/tiny.parquet"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_fifo_in_a_release_is_refused_by_every_command(tmp_path, toy_release, rel, case):
    release = _release_with_fifo(tmp_path, toy_release, rel)
    args = [a.format(release=release, tmp=tmp_path) for a in CASES[case]]
    r = _run(args)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out, out
    assert "regular file" in out or "not a readable" in out or "missing" in out, out


@pytest.mark.parametrize("rel", ["manifest.json", "data/toy/validation/tiny.parquet"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_fifo_in_a_release_is_refused_by_every_loader(tmp_path, toy_release, rel, loader):
    release = _release_with_fifo(tmp_path, toy_release, rel)
    code = ("import sys\ntry:\n    " + LOADERS[loader].format(release=str(release))
            + "\nexcept ValueError as exc:\n    print(exc)\n    sys.exit(2)\n")
    r = _run(None, code)
    assert r.returncode == 2 and "regular file" in r.stdout, r.stdout + r.stderr
