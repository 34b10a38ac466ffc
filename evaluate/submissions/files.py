"""Opening and parsing a submission's files as hostile input (the first step of reading a submission).

Only regular files inside the submission folder are opened (a symlink pointing out of it, a device, a FIFO or a
folder named like a data file is refused; hidden files are ignored); sizes are checked on the opened file; row
counts, string lengths, metadata size, YAML aliases and nesting depth are capped before any work proportional to
them; every parser failure becomes a :class:`Problem` naming the file; nothing is unpickled or executed, and error
messages quote file content only as short escaped excerpts.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from ...loaders.manifest import unique_keys
from ...safe_read import UnsafeFile, read_bytes_capped
from .problems import Problem, SubmissionError, excerpt

DATA_SUFFIXES = (".parquet", ".csv", ".jsonl")
METADATA_NAMES = ("submission.yaml", "submission.yml", "submission.json")
MAX_FILE_BYTES = 1 << 30
MAX_TOTAL_BYTES = 2 << 30
MAX_FILES = 1000
MAX_ROWS = 10_000_000
MAX_STRING = 500
MAX_METADATA_BYTES = 256 << 10
MAX_METADATA_DEPTH = 8
# Columns a prediction file may use; anything else is ignored (never parsed into objects).
KNOWN_COLUMNS = ("instance_id", "pretrain_seed", "finetune_seed", "checkpoint", "pred", "probs", "instance_hash")
SEED_COLUMNS = ("pretrain_seed", "finetune_seed", "checkpoint")


def _entry_problem(path: Path, root: Path) -> str | None:
    """Why ``path`` (an entry of the submission folder) may not be read, or None."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot inspect ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return "a broken or looping symbolic link"
        if root.resolve() not in target.parents:
            return "a symbolic link to a file outside the submission folder"
        st = os.stat(target)
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, FIFO or socket)"
    return None


def list_files(path: str | Path) -> tuple[list[Path], Path | None, Path]:
    """The prediction files, the metadata file and the folder of a submission (a file or a folder).

    Raises :class:`SubmissionError` for entries that may not be read; hidden entries are ignored."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise ValueError(f"{path}: no such file or folder")
    if path.is_symlink() and path.is_dir():
        raise ValueError(f"{path}: a symbolic link to a folder; give the folder itself")
    root = path if path.is_dir() and not path.is_symlink() else path.parent
    entries = sorted(e for e in root.iterdir() if not e.name.startswith(".")) if path == root else [path]
    problems, files = [], []
    for entry in entries:
        suffix = entry.suffix.lower()
        if suffix not in DATA_SUFFIXES:
            continue
        why = _entry_problem(entry, root)
        if why:
            problems.append(Problem(entry.name, None, "-", why))
        else:
            files.append(entry)
    meta = None
    for name in METADATA_NAMES:
        candidate = root / name
        if candidate.exists() or candidate.is_symlink():
            why = _entry_problem(candidate, root)
            if why:
                problems.append(Problem(name, None, "-", why))
            else:
                meta = candidate
            break
    if problems:
        raise SubmissionError(problems)
    if not files:
        raise ValueError(f"{path}: no .parquet, .csv or .jsonl prediction files")
    if len(files) > MAX_FILES:
        raise ValueError(f"{path}: {len(files)} prediction files, over the limit of {MAX_FILES}; combine runs into "
                         f"fewer files")
    return files, meta, root


def read_table(path: Path, root: Path, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """The known columns of one prediction file as a DataFrame; ``ValueError`` with a one-line reason."""
    try:
        data = read_bytes_capped(path, MAX_FILE_BYTES, root=root)
    except UnsafeFile as exc:
        raise ValueError(str(exc).replace(f"{path}: ", "")) from None
    suffix = path.suffix.lower()
    if suffix in (".csv", ".jsonl"):
        if data and not data.endswith(b"\n"):
            raise ValueError("the last line has no line end: the file looks cut off (end it with a newline)")
        if data.count(b"\n") > max_rows + 1:
            raise ValueError(f"more than {max_rows:,} rows")
    try:
        return _checked_frame(_parse(data, suffix, max_rows))
    except Refused:
        raise
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, RecursionError, MemoryError, OverflowError,
            pd.errors.ParserError) as exc:  # also corruption found while converting (a flipped bit)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot parse as {suffix[1:]}: {first[:120]}") from None


class Refused(ValueError):
    """A file that parsed but breaks a rule of the format; the message says which."""


def _once(names: list[str]) -> None:
    repeated = sorted({c for c in names if names.count(c) > 1 and (c in KNOWN_COLUMNS or c.startswith("prob_"))})
    if repeated:
        raise Refused(f"column(s) {[excerpt(c, 30) for c in repeated[:3]]} appear more than once; every column once")


def _checked_frame(table: pa.Table) -> pd.DataFrame:
    """The known columns as a DataFrame, after the checks that need the parsed table: every column name once,
    strings capped, seeds and checkpoints stored as integers or text (never dates, durations or booleans)."""
    names = table.column_names
    _once(names)
    table = table.select([c for c in names if c in KNOWN_COLUMNS or c.startswith("prob_")][:64])
    for name in table.column_names:
        column = table.column(name)
        kind = column.type
        if name in SEED_COLUMNS and not (pa.types.is_integer(kind) or pa.types.is_string(kind)
                                         or pa.types.is_large_string(kind) or pa.types.is_floating(kind)
                                         or pa.types.is_null(kind)):
            raise Refused(f"column {name!r} has type {kind}; seeds and checkpoints are whole numbers")
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            longest = pc.max(pc.utf8_length(column)).as_py() or 0
            if longest > MAX_STRING:
                raise Refused(f"column {name!r} has a value of {longest:,} characters (at most {MAX_STRING})")
    return table.to_pandas(ignore_metadata=True)


def _parse(data: bytes, suffix: str, max_rows: int) -> pa.Table:
    if suffix == ".parquet":
        pf = pq.ParquetFile(pa.BufferReader(data))
        if pf.metadata.num_rows > max_rows:
            raise Refused(f"{pf.metadata.num_rows:,} rows, more than {max_rows:,}")
        _once(pf.schema_arrow.names)
        wanted = [c for c in pf.schema_arrow.names if c in KNOWN_COLUMNS or c.startswith("prob_")]
        return pf.read(columns=wanted, use_pandas_metadata=False)
    if suffix == ".csv":
        _once(data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r").split(","))
        df = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""], dtype=str, engine="c")
        return pa.Table.from_pandas(df, preserve_index=False)
    df = pd.read_json(io.BytesIO(data), lines=True, dtype=False)  # ujson: C, depth-limited
    df = df[[c for c in df.columns if isinstance(c, str) and (c in KNOWN_COLUMNS or c.startswith("prob_"))]]
    return pa.Table.from_pandas(df.astype({c: str for c in df.columns if c != "probs" and df[c].dtype == object}),
                                preserve_index=False)


def yaml_checked(text: str, name: str) -> object:
    """YAML parsed as hostile input: no aliases (no alias bombs), nesting capped before anything is built, and no
    key twice in the top-level mapping (the last would silently win)."""
    depth = max_depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ValueError(f"{name}: YAML aliases (*name) are not accepted")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            max_depth = max(max_depth, depth)
            if max_depth > MAX_METADATA_DEPTH:
                raise ValueError(f"{name}: nested deeper than {MAX_METADATA_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"{name}: key(s) {[excerpt(k, 30) for k in twice[:3]]} appear more than once")
    return yaml.safe_load(text)


def _depth(value: object, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (iteratively: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > limit:
                return False
            stack += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return True


def read_metadata(path: Path, root: Path) -> dict[str, object]:
    """The metadata mapping of ``submission.yaml`` / ``.json``, size- and depth-capped (values are checked by
    :func:`instdecay.evaluate.submissions.checks.check_metadata`)."""
    try:
        text = read_bytes_capped(path, MAX_METADATA_BYTES, root=root).decode("utf-8")
        if path.suffix == ".json":
            meta = json.loads(text, object_pairs_hook=unique_keys)
            if not _depth(meta, MAX_METADATA_DEPTH):
                raise ValueError(f"{path.name}: nested deeper than {MAX_METADATA_DEPTH} levels")
        else:
            meta = yaml_checked(text, path.name)
    except UnsafeFile as exc:
        raise ValueError(str(exc)) from None
    except (ValueError, UnicodeDecodeError, RecursionError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: cannot read submission metadata ({first[:120]})") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a mapping of metadata fields")
    return meta
