"""`release push`: upload a validated release folder to the Hugging Face Hub in batched commits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import re

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..loaders.manifest import read_manifest
from .validate import validate_release

MAX_FILES_PER_COMMIT = 100
RETRY_STATUS = {429, 500, 502, 503, 504}
# Tags and branches are git refs on the Hub: no spaces, shell characters, '..', leading '-' or trailing '.lock'.
REF_NAME = re.compile(r"^(?!.*\.\.)(?!.*\.lock$)[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9._-]{1,100}){0,3}$")


def check_repo_id(repo_id: str) -> str:
    """A dataset repo id as the Hub accepts it (``owner/name``), or a ``ValueError`` saying why not."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"repo id {repo_id!r} is not valid on the Hub: {str(exc).splitlines()[0][:160]}") from None
    if repo_id.count("/") != 1:
        raise ValueError(f"repo id {repo_id!r}: expected 'owner/name' (a user or organisation, then the dataset name)")
    return repo_id


def check_ref(name: str | None, what: str) -> str | None:
    """A tag or branch name the Hub accepts (git ref rules), or a ``ValueError``."""
    if name is not None and not REF_NAME.match(name):
        raise ValueError(f"{what} {name!r} is not a valid git ref name: use letters, digits, '.', '_', '-' "
                         f"(and '/' between parts), e.g. v1.0")
    return name


def _network_errors() -> tuple[type[BaseException], ...]:
    import httpx2

    return (httpx2.HTTPError, OSError)


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
    check_repo_id(repo_id)
    check_ref(revision, "revision")
    check_ref(tag, "tag")
    problems = validate_release(folder)
    if problems:
        raise ValueError(f"{folder}: refusing to push a release that fails validation: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    data = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    data += sorted(p.relative_to(folder).as_posix() for p in (folder / "figures").glob("*.png")
                   if p.is_file() and not p.is_symlink())  # the card's images
    data += sorted(read_manifest(folder).get("attachments", {}))  # hash-checked by validate_release above
    last = [name for name in ("LICENSE.md", "eval.yaml") if (folder / name).is_file()] + ["manifest.json", "README.md"]
    files = data + last
    batches = [data[i : i + batch_size] for i in range(0, len(data), batch_size)] + [last]
    return PushPlan(repo_id, files, batches, revision, tag)


def _with_retry(call: Callable[[], object], what: str, retries: int, backoff_s: float, sleep=time.sleep) -> object:
    """Call the Hub, retrying HTTP 429 and 5xx with exponential backoff; any other failure (HTTP error, no
    network, offline mode) becomes one ``ValueError`` line naming the step."""
    for attempt in range(retries + 1):
        try:
            return call()
        except HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status not in RETRY_STATUS or attempt == retries:
                raise ValueError(f"{what} failed: HTTP {status}: {str(exc).splitlines()[0][:200]}") from None
            wait = backoff_s * 2**attempt
            print(f"{what}: HTTP {status}, retrying in {wait:.0f} s ({attempt + 1}/{retries})")
            sleep(wait)
        except _network_errors() as exc:
            raise ValueError(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                             f" (check the network and your Hugging Face token)") from None
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
