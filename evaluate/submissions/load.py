"""Reading a submission: a new model's per-instance predictions on one task and evaluation set of a reference.

Format: one file (parquet, CSV or JSONL) or a folder of them, with columns

``instance_id``                      an instance of the reference split
``pretrain_seed`` (optional, 0)      which pretrained checkpoint
``finetune_seed``                    which finetuning run
``checkpoint`` (optional, 0)         which checkpoint of the run (the last one is analysed)
``pred``                             a label name or index, **or** class probabilities as
``probs``                            a list column, **or** one ``prob_<label>`` column per label
``instance_hash`` (optional)         checked against the reference's hash of the same instance

and metadata (``model``, ``task``, ``split``, ``params``, ``pretrained``, ``url``, ``contact``) in a
``submission.yaml`` / ``submission.json`` beside the file (or in the folder), or passed directly. Files are
parsed as data only: nothing from a submission is executed or unpickled.

:func:`load_submission` reads in one direction: :mod:`.files` opens and parses (hostile input), :mod:`.checks`
checks metadata and rows against the reference, :mod:`.assemble` builds the runs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from ...loaders.read import resolve
from ...safe_read import open_regular
from .assemble import Submission, assemble_runs, copied_runs, reference_fingerprints
from .checks import MAX_RUNS, check_metadata, check_rows, find_target
from .files import MAX_FILE_BYTES, MAX_TOTAL_BYTES, list_files, read_metadata, read_table
from .problems import Problem, SubmissionError

SUBMISSION_PATTERNS = ["*.parquet", "*.csv", "*.jsonl", "submission.yaml", "submission.yml", "submission.json"]


def resolve_submission(path: str | Path) -> Path:
    """A local submission file or folder as is; otherwise a Hub dataset id of one submission, downloaded (its
    prediction files and submission.yaml only) into the Hugging Face cache."""
    local = Path(path)
    if local.exists() or local.is_symlink():
        return local
    text = str(path)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError

        try:
            return Path(snapshot_download(repo_id=text, repo_type="dataset", allow_patterns=SUBMISSION_PATTERNS))
        except (HFValidationError, OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ValueError(f"{text}: no such local file or folder, and it could not be fetched as a Hub dataset "
                             f"id ({reason})") from None
        except Exception as exc:  # noqa: BLE001 - network errors of the HTTP client: one line, not a traceback
            raise ValueError(f"{text}: no such local file or folder, and fetching it from the Hub failed "
                             f"({type(exc).__name__})") from None
    raise ValueError(f"{text}: no such file or folder")


def load_submission(path: str | Path, reference: str | Path, *, metadata: dict[str, object] | None = None,
                    revision: str | None = None, max_bytes: int = MAX_TOTAL_BYTES) -> Submission:
    """Read and validate a submission against ``reference`` (a dataset folder or Hub id).

    Raises :class:`SubmissionError` listing the problems (file, row, field): every instance present exactly
    once per run, no unknown ids, valid label names/indices, probabilities finite and summing to ~1 and agreeing
    with ``pred``, at least one run, hashes matching the reference's, no run a copy of another or of a reference
    run. Files are read as hostile input (:mod:`instdecay.evaluate.submissions.files`). Task and split come from the
    metadata (or the reference when it has a single task / split).
    """
    path = resolve_submission(path)
    files, meta_path, root = list_files(path)
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise ValueError(f"{path}: submission is {total / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
                         f"submit the last checkpoint only or split it by run")
    meta = read_metadata(meta_path, root) if meta_path is not None else {}
    meta.update({k: v for k, v in (metadata or {}).items() if v is not None})
    meta = check_metadata(meta, str(meta_path or "metadata"))
    target = find_target(meta, resolve(reference, revision), path, meta_path is not None)
    meta.setdefault("model", Path(path).stem if Path(path).is_file() else Path(path).name)

    problems: list[Problem] = []
    frames = []
    for f in files:
        try:
            df = read_table(f, root, max_rows=max(len(target.instances), 1) * MAX_RUNS)
        except ValueError as exc:
            problems.append(Problem(f.name, None, "-", str(exc)))
            continue
        frames.append(check_rows(f.name, df, target, problems))
    if problems:
        raise SubmissionError(problems)
    rows = pd.concat(frames, ignore_index=True)
    if rows.empty:
        raise SubmissionError([Problem(Path(path).name, None, "-", "no prediction rows: at least one run is needed")])
    sub = assemble_runs(rows, target, meta, tuple(f.name for f in files))
    problems = copied_runs(sub, reference_fingerprints(target.folder, target.task, target.split,
                                                       sub.prob_gold is not None))
    if problems:
        raise SubmissionError(problems)
    return sub


def content_hash(path: str | Path) -> str:
    """sha256 over the submission's files and metadata (names and bytes), for caching its evaluation."""
    files, meta, root = list_files(resolve_submission(path))
    h = hashlib.sha256()
    for f in [*files, *([meta] if meta else [])]:
        h.update(f.name.encode() + b"\0")
        fd = open_regular(f, root=root, max_bytes=MAX_FILE_BYTES)
        with os.fdopen(fd, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()
