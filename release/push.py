"""`release push`: upload a validated release folder to the Hugging Face Hub in batched commits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from .validate import validate_release

MAX_FILES_PER_COMMIT = 100
RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class PushPlan:
    repo_id: str
    files: list[str]
    batches: list[list[str]]
    revision: str | None
    tag: str | None


def plan_push(folder: str | Path, repo_id: str, *, revision: str | None = None, tag: str | None = None,
              batch_size: int = MAX_FILES_PER_COMMIT) -> PushPlan:
    """Validate the folder (refusing to push an invalid one) and list the files per commit.

    Data files go first and ``README.md`` + ``manifest.json`` last, so the card never points at files that
    are not uploaded yet.
    """
    folder = Path(folder)
    problems = validate_release(folder)
    if problems:
        raise ValueError(f"{folder}: refusing to push a release that fails validation: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    data = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    files = data + ["manifest.json", "README.md"]
    batches = [data[i : i + batch_size] for i in range(0, len(data), batch_size)] + [["manifest.json", "README.md"]]
    return PushPlan(repo_id, files, batches, revision, tag)


def _with_retry(call: Callable[[], object], what: str, retries: int, backoff_s: float, sleep=time.sleep) -> object:
    for attempt in range(retries + 1):
        try:
            return call()
        except HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status not in RETRY_STATUS or attempt == retries:
                raise
            wait = backoff_s * 2**attempt
            print(f"{what}: HTTP {status}, retrying in {wait:.0f} s ({attempt + 1}/{retries})")
            sleep(wait)
    raise AssertionError("unreachable")


def push_release(
    folder: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    create_pr: bool = False,
    tag: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    api: HfApi | None = None,
    retries: int = 5,
    backoff_s: float = 2.0,
    sleep=time.sleep,
) -> PushPlan:
    """Upload ``folder`` to the dataset repo ``repo_id``: ``create_repo`` then one ``create_commit`` per batch of
    at most 100 files, retrying with exponential backoff on HTTP 429 and 5xx; ``tag`` then marks the release
    with ``create_tag`` so users can pin ``revision=``. With ``create_pr`` the first commit opens a pull request
    and the later batches are committed to it. The token comes from ``token`` or the usual HF
    environment / login. ``dry_run`` only prints the plan."""
    plan = plan_push(folder, repo_id, revision=revision, tag=tag)
    folder = Path(folder)
    if dry_run:
        print(f"dry run: would upload {len(plan.files)} files to dataset {repo_id}"
              f"{f' (revision {revision})' if revision else ''} in {len(plan.batches)} commit(s)"
              f"{f', then tag {tag}' if tag else ''}:")
        for path in plan.files:
            print(f"  {path} ({(folder / path).stat().st_size:,} bytes)")
        return plan
    api = api or HfApi(token=token)
    _with_retry(lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
                "create_repo", retries, backoff_s, sleep)
    target, open_pr = revision, create_pr
    for k, batch in enumerate(plan.batches, 1):
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p)) for p in batch]
        info = _with_retry(
            lambda: api.create_commit(repo_id, operations, commit_message=f"instdecay release: part {k}/{len(plan.batches)}",
                                      repo_type="dataset", revision=target, create_pr=open_pr),
            f"commit {k}/{len(plan.batches)}", retries, backoff_s, sleep)
        if open_pr:  # later batches go to the same pull request
            target, open_pr = info.pr_revision, False
    if tag:
        _with_retry(lambda: api.create_tag(repo_id, tag=tag, revision=revision, repo_type="dataset", exist_ok=True),
                    "create_tag", retries, backoff_s, sleep)
    return plan
