"""`instdecay leaderboard build`: evaluate every submission against the reference and write a static site.

Submissions come from folders of submission folders, single submission folders, or Hub dataset ids. Each is
evaluated in isolation and cached by the content hash of its files, the reference and the settings. A submission
that fails is rejected: the rejection goes to the terminal and to a local log (``.leaderboard-rejected.log``), never
to the public page, and the build publishes nothing and fails unless ``keep_going`` (then the board is published
without it). The site has one section per task and evaluation set of the reference: models ranked with ties (rank =
1 + the number of models whose accuracy is above it by a paired 95% interval), a filter box, sortable columns, how to
submit, download links, the reference's version and the build date, and one detail page per submission, plus exports
for the Hub (a ``model-index`` snippet for a model card and ``.eval_results`` entries).

Writes stay inside ``--out`` and touch only what this command wrote: every file written is recorded with its
sha256 in ``.leaderboard-files.json``; a file is replaced or removed only if it is recorded there and still has that
content (anything else under ``--out`` is refused by name, never overwritten or deleted); cached results are used
only while they match their recorded hash; nothing is opened through a symbolic link (the lock file included);
every file is written atomically, and concurrent builds into one folder take turns on the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import io
import json
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from ... import __version__
from ...atomic import atomic_write
from ...loaders.manifest import manifest_sha256, seed_design
from ...loaders.read import load_tensor, read_manifest, resolve
from ..stats.paired import paired_bootstrap
from ..submissions.load import SubmissionError, content_hash, load_submission, resolve_submission
from ..submissions.problems import excerpt
from .compare import compare, write_comparison

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
OWNED = ".leaderboard-files.json"
LOCK = ".leaderboard.lock"
REJECTED_LOG = ".leaderboard-rejected.log"
MAX_REASON = 300
MAX_OWNED_BYTES = 16 << 20
COLUMNS = [  # key, header, numeric
    ("rank", "rank", True), ("model", "model", False), ("kind", "kind", False), ("params", "params", True),
    ("runs", "runs (P × F)", False), ("accuracy", "accuracy", True), ("ci", "95% CI", False),
    ("position", "vs reference sizes (paired 95% CI)", False),
    ("decay_vs_largest", "decay vs largest: paper / 95% LCB", False),
    ("improve_vs_largest", "improve vs largest: paper / 95% LCB", False),
    ("training_data", "training data", False), ("submitted", "submitted", False),
]
NOT_STATED = "not stated"


class Rejected(ValueError):
    """Submissions were rejected and ``keep_going`` was off: nothing was published. ``board`` holds the
    rejections (``board["rejected"]``)."""

    def __init__(self, board: dict):
        self.board = board
        super().__init__(f"{len(board['rejected'])} submission(s) rejected; nothing published (see "
                         f"{REJECTED_LOG}; --keep-going publishes the board without them)")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Site:
    """Writes under ``out`` only through real folders, atomically, never over a file it did not write, and
    records the sha256 of everything it wrote. Writes are held until :meth:`publish`, so a build that fails
    leaves ``out`` as it was."""

    def __init__(self, out: Path, previous: dict[str, str]):
        self.out = out
        self.previous = previous
        self.written: dict[str, str] = {}
        self.pending: dict[str, bytes] = {}

    def _path(self, rel: str, create: bool = False) -> Path:
        """``out / rel`` for a clean relative path whose folders are real folders (no symlinks); ``create`` makes
        the missing ones."""
        parts = Path(rel).parts
        if not parts or Path(rel).is_absolute() or ".." in parts or any(p.startswith(".") for p in parts[:-1]):
            raise ValueError(f"{rel}: not a path inside --out")
        path = self.out
        for part in parts[:-1]:
            path = path / part
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise ValueError(f"{path}: a symbolic link or a file where the leaderboard writes a folder; remove it")
            if create:
                path.mkdir(exist_ok=True)
        return path / parts[-1]

    def owned(self, rel: str) -> bool:
        """Whether ``rel`` is a regular file this command wrote last time and nobody changed since."""
        path = self.out / rel
        if rel not in self.previous or path.is_symlink() or not path.is_file():
            return False
        return _sha256(path.read_bytes()) == self.previous[rel]

    def write(self, rel: str, data: str | bytes) -> None:
        """Queue a file for :meth:`publish`; refused now if ``out`` holds a file there that this command did not
        write (its own files are replaced even if edited since: an edit is never trusted, it is recomputed)."""
        path = self._path(rel)
        if path.is_symlink() or (path.exists() and (rel not in self.previous or not path.is_file())):
            raise ValueError(f"{path}: exists and was not written by the leaderboard; move it away or choose another "
                             f"--out")
        payload = data.encode("utf-8") if isinstance(data, str) else data
        self.pending[rel] = payload
        self.written[rel] = _sha256(payload)

    def publish(self) -> None:
        """Write every queued file (atomically), remove what the last build wrote and this one did not, and
        record what is there now."""
        for rel, payload in self.pending.items():
            atomic_write(self._path(rel, create=True), lambda tmp, data=payload: Path(tmp).write_bytes(data))
        self.remove_stale()
        record = {"files": dict(sorted(self.written.items()))}
        atomic_write(self.out / OWNED, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))

    def read_cached(self, rel: str) -> bytes | None:
        """A file from an earlier build, only if it still has the content recorded then."""
        return (self.out / rel).read_bytes() if self.owned(rel) else None

    def keep(self, rel: str) -> None:
        """Keep a file of an earlier build (checked by :meth:`read_cached`) as written by this one."""
        self.written[rel] = self.previous[rel]

    def remove_stale(self) -> None:
        """Delete the files this command wrote last time and not this time, if unchanged; never anything else."""
        for rel in sorted(set(self.previous) - set(self.written)):
            try:
                path = self._path(rel)
            except ValueError:
                continue
            if not self.owned(rel) or any(p.is_symlink() for p in path.parents if self.out in p.parents):
                continue
            path.unlink()
            parent = path.parent
            while parent != self.out and self.out in parent.parents and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


def _previous(out: Path) -> dict[str, str]:
    """The files the last build recorded (relative path -> sha256); an unreadable or malformed record is empty."""
    path = out / OWNED
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_OWNED_BYTES:
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str) and len(v) == 64}


@contextmanager
def _locked(out: Path):
    """Take turns with other builds into the same folder (the lock is released if a build dies); the lock file is
    never opened through a symbolic link."""
    path = out / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open the lock file ({exc.strerror}); remove it if it is a symbolic "
                         f"link") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file; remove it")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class _Entry:
    slug: str
    result: dict
    scores: np.ndarray  # (N, P, F) last-checkpoint correctness, for the paired ranking


def _sources(submissions: list[str | Path]) -> tuple[list[tuple[str, Path]], list[str]]:
    """(slug, folder) of every submission named by ``submissions``, and rejections."""
    found, rejected = [], []
    for source in submissions:
        path = Path(source)
        if path.is_file():
            raise ValueError(f"--submissions {source}: a file; give a folder of submission folders, one submission "
                             f"folder, or a Hub dataset id")
        if not path.exists():
            folder = resolve_submission(str(source))  # a Hub dataset id of one submission (or a clear error)
            found.append((re.sub(r"[^A-Za-z0-9_.-]", "__", str(source)), folder))
            continue
        if _is_submission(path):
            found.append((path.resolve().name, path))
            continue
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() or not entry.is_dir():
                rejected.append(f"{excerpt(entry.name, 60)}: each submission must be a folder (prediction files + "
                                f"submission.yaml), not a file or a symbolic link")
            elif not SLUG.match(entry.name):
                rejected.append(f"{excerpt(entry.name, 60)}: folder names must be letters, digits, '_', '.' or '-' "
                                f"(they become file names of the site)")
            else:
                found.append((entry.name, entry))
    return found, rejected


def _is_submission(path: Path) -> bool:
    """A folder with submission metadata is one submission; any other folder holds submission folders."""
    return any((path / n).exists() for n in ("submission.yaml", "submission.yml", "submission.json"))


def _short(exc: Exception) -> str:
    text = exc.report().replace("\n", "; ") if isinstance(exc, SubmissionError) else str(exc)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _evaluate(slug: str, path: Path, folder: Path, site: _Site, key_base: str, n_boot: int, seed: int,
              glue_dir: str | Path | None, reference_id: str) -> _Entry:
    key = _sha256(f"{content_hash(path)}|{key_base}".encode())
    cached, scores_file = f"cache/{key}.json", f"cache/{key}.npy"
    report = f"models/{slug}"
    cached_result, cached_scores = site.read_cached(cached), site.read_cached(scores_file)
    if cached_result is not None and cached_scores is not None:
        result = json.loads(cached_result)
        files = [f"{report}/{n}" for n in result["files"]]
        if result.get("slug") == slug and all(site.read_cached(f) is not None for f in files):
            for rel in [cached, scores_file, *files]:
                site.keep(rel)
            return _Entry(slug, result, np.load(io.BytesIO(cached_scores), allow_pickle=False))
    sub = load_submission(path, folder)
    c = compare(sub, folder, n_boot=n_boot, seed=seed, glue_dir=glue_dir)
    with tempfile.TemporaryDirectory(prefix="instdecay-board-") as staging:
        written = write_comparison(c, staging)
        outputs = {p.name: p.read_bytes() for p in written}
    result = c.to_dict() | {"task": sub.task, "split": sub.split, "evaluated": date.today().isoformat(),
                            "plots": [n for n in outputs if n.endswith(".png")], "reference_id": reference_id,
                            "slug": slug}
    outputs["model-index.yaml"] = _model_index(result).encode()
    outputs["eval_results.yaml"] = _eval_results(result).encode()
    result["files"] = sorted(outputs)
    for name, data in outputs.items():
        site.write(f"{report}/{name}", data)
    site.write(cached, json.dumps(result, indent=2, allow_nan=False, default=str) + "\n")
    site.write(scores_file, _npy_bytes(sub.correct.astype(np.int8)))
    return _Entry(slug, result, sub.correct)


def _model_index(result: dict) -> str:
    """A ``model-index`` block for the submission's model card (huggingface_hub's own serialisation)."""
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    sub, acc = result["submission"], result["accuracy"][0]
    entry = EvalResult(task_type="text-classification", task_name="Text Classification",
                       dataset_type=result["reference_id"], dataset_name=f"instdecay {sub['task']}",
                       dataset_config=sub["task"], dataset_split=sub["split"], metric_type="accuracy",
                       metric_value=round(float(acc["accuracy"]), 6),
                       metric_name=f"accuracy (mean of {sub['n_pretrain']} x {sub['n_finetune']} runs; 95% CI "
                                   f"{acc['ci_low']:.4f}-{acc['ci_high']:.4f})",
                       source_name="instdecay leaderboard", source_url="https://github.com/instdecay/instdecay")
    return yaml.safe_dump({"model-index": eval_results_to_model_index(str(sub["model"]), [entry])}, sort_keys=False)


def eval_task_id(task: str, split: str) -> str:
    """The id of one task and evaluation set in the release's ``eval.yaml`` (and in ``.eval_results`` entries)."""
    return f"{task}_{split}"


def _eval_results(result: dict) -> str:
    """``.eval_results/<name>.yaml`` entries for the model repo (huggingface_hub's serialisation), pointing at the
    reference's own Hub id and a task its ``eval.yaml`` defines."""
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    sub, acc = result["submission"], result["accuracy"][0]
    entry = EvalResultEntry(dataset_id=result["reference_id"], task_id=eval_task_id(sub["task"], sub["split"]),
                            value=round(float(acc["accuracy"]), 6),
                            date=str(result["evaluated"]), source_url="https://github.com/instdecay/instdecay",
                            source_name="instdecay leaderboard",
                            notes=f"mean over {sub['n_pretrain']} x {sub['n_finetune']} runs, last checkpoint")
    return yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False)


def _bound(row: dict | None, kind: str) -> str:
    if not row or row.get(kind) is None:
        return "–"
    return f"{row[kind]:.3f} / {row[f'{kind}_lcb']:.3f}"


def _rank(scores: list[np.ndarray], design: str) -> list[int]:
    """1 + the number of models whose accuracy is above each one by a paired 95% t interval (ties share ranks)."""
    n = len(scores)
    above = np.zeros(n, dtype=int)
    for i in range(n):
        for j in range(i + 1, n):  # a loop over pairs of models, not instances
            r = paired_bootstrap(scores[i], scores[j], seed_design=design)
            if r.ci_low > 0:
                above[i] += 1
            elif r.ci_high < 0:
                above[j] += 1
    return (1 + above).tolist()


def _section(folder: Path, manifest: dict, task: str, split: str, entries: list[_Entry]) -> dict:
    entry = manifest["tasks"][task]
    design = seed_design(manifest, task)
    rows, scores = [], []
    for size in entry["sizes"]:
        x = load_tensor(folder, task, split, size, checkpoints="last").values.astype(float)
        ci = paired_bootstrap(np.zeros_like(x), x, seed_design=design)
        rows.append({"model": size, "slug": None, "kind": "reference", "params": entry["grid"][size]["n_params"],
                     "runs": f"{x.shape[1]} × {x.shape[2]}", "accuracy": ci.delta,
                     "ci": f"[{ci.ci_low:.4f}, {ci.ci_high:.4f}]", "position": "reference",
                     "decay_vs_largest": "–", "improve_vs_largest": "–", "training_data": "reference recipe (card)",
                     "submitted": "–"})
        scores.append(x)
    for e in entries:
        versus, acc, sub = e.result["versus"], e.result["accuracy"][0], e.result["submission"]
        rows.append({"model": str(sub["model"]), "slug": e.slug, "kind": "submission", "params": sub.get("params"),
                     "runs": f"{sub['n_pretrain']} × {sub['n_finetune']}", "accuracy": acc["accuracy"],
                     "ci": f"[{acc['ci_low']:.4f}, {acc['ci_high']:.4f}]", "position": acc["ladder_position"],
                     "decay_vs_largest": _bound(versus[-1], "decay"), "improve_vs_largest": _bound(versus[-1], "improve"),
                     "training_data": str(sub.get("training_data") or NOT_STATED),
                     "submitted": str(sub.get("submitted") or e.result["evaluated"])})
        scores.append(e.scores)
    for row, rank in zip(rows, _rank(scores, design)):
        row["rank"] = rank
    rows.sort(key=lambda r: (r["rank"], -r["accuracy"]))
    return {"task": task, "split": split, "rows": rows}


def build_leaderboard(submissions, reference: str | Path, out: str | Path, *, n_boot: int = 1000, seed: int = 0,
                      revision: str | None = None, task: str | None = None, split: str | None = None,
                      glue_dir: str | Path | None = None, keep_going: bool = False) -> dict:
    """Evaluate every submission (cached), rank them with the reference sizes per task and evaluation set, and
    write the site into ``out``; return the board (as written to ``leaderboard.json``, plus ``rejected``).

    A model may appear once per task and evaluation set. Rejections are written to ``out/.leaderboard-rejected.log``
    (not to the public files); with any rejection :class:`Rejected` is raised and nothing is published, unless
    ``keep_going``."""
    sources = [submissions] if isinstance(submissions, (str, Path)) else list(submissions)
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out}: a symbolic link or a file; give a folder for the site")
    out.mkdir(parents=True, exist_ok=True)
    folder = resolve(reference, revision)
    manifest = read_manifest(folder)
    ref_hash = manifest_sha256(folder)
    key_base = f"{ref_hash}|{n_boot}|{seed}|{__version__}"
    found, rejected = _sources(sources)
    reference_id = str(reference) if not Path(reference).exists() else str(manifest.get("repo_id", "instdecay/predictions"))
    sections_wanted = [(t, s) for t, e in sorted(manifest["tasks"].items()) for s in e["eval_sets"]
                       if (task is None or t == task) and (split is None or s == split)]
    if not sections_wanted:
        raise ValueError(f"--task/--split {task}/{split}: not in the reference; it has "
                         f"{[(t, list(e['eval_sets'])) for t, e in manifest['tasks'].items()]}")
    with _locked(out):
        site = _Site(out, _previous(out))
        entries, names = [], {}
        for slug, path in found:
            try:
                e = _evaluate(slug, path, folder, site, key_base, n_boot, seed, glue_dir, reference_id)
            except (ValueError, OSError) as exc:  # one bad submission never stops the others being evaluated
                rejected.append(f"{excerpt(slug, 60)}: {_short(exc)}")
                continue
            key = (str(e.result["submission"]["model"]), e.result["task"], e.result["split"])
            if key in names:
                rejected.append(f"{excerpt(slug, 60)}: model {excerpt(key[0], 60)} is already on the {key[1]} / "
                                f"{key[2]} board (from {names[key]}); a model appears once per task and evaluation set")
                continue
            names[key] = slug
            entries.append(e)
        outside = [e for e in entries if (e.result["task"], e.result["split"]) not in sections_wanted]
        rejected += [f"{e.slug}: evaluated on {e.result['task']} / {e.result['split']}, not built (--task/--split)"
                     for e in outside]
        entries = [e for e in entries if e not in outside]
        board = {"reference": _shown(reference), "reference_manifest_sha256": ref_hash,
                 "reference_built_with": manifest.get("built_with", ""), "built": date.today().isoformat(),
                 "built_with": f"instdecay {__version__}", "sections": [], "rejected": rejected}
        _write_log(out, rejected)
        if rejected and not keep_going:
            raise Rejected(board)
        count = {ts: sum((e.result["task"], e.result["split"]) == ts for e in entries) for ts in sections_wanted}
        sections_wanted.sort(key=lambda ts: (-count[ts], ts))  # sections with submissions first
        board["sections"] = [_section(folder, manifest, t, s, [e for e in entries
                                                                if (e.result["task"], e.result["split"]) == (t, s)])
                             for t, s in sections_wanted]
        public = {k: v for k, v in board.items() if k != "rejected"}
        site.write("leaderboard.json", json.dumps(public, indent=2, allow_nan=False, default=str) + "\n")
        site.write("leaderboard.md", _markdown(public))
        site.write("index.html", _index_html(public))
        for e in entries:
            site.write(f"models/{e.slug}.html", _detail_html(e))
        site.publish()
    return board


def _write_log(out: Path, rejected: list[str]) -> None:
    """The local record of rejections (never published): one line each; removed when nothing is rejected."""
    path = out / REJECTED_LOG
    if path.is_symlink():
        raise ValueError(f"{path}: a symbolic link; remove it")
    if rejected:
        atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(rejected) + "\n", encoding="utf-8"))
    elif path.is_file():
        path.unlink()


def _shown(reference: str | Path) -> str:
    path = Path(reference)
    return path.name if path.exists() else str(reference)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _md_cell(value: object) -> str:
    """Markdown table cell text with HTML and table syntax neutralised by backslash escapes."""
    text = re.sub(r"([\\|`*_<>\[\]])", r"\\\1", _cell(value))
    return " ".join(text.split())


EXPLANATION = [
    "Accuracy is the mean over runs at each run's last checkpoint, with a 95% t interval over seeds and instances "
    "(the same interval for reference sizes and submissions).",
    "Rank is 1 + the number of models whose accuracy is higher by a paired 95% interval; equal ranks are not "
    "distinguishable.",
    "'vs reference sizes' says whether a model is above, below or indistinguishable from each reference size "
    "(paired 95% interval of the accuracy difference).",
    "Decay / improve: the paper's estimate of the fraction of instances on which the model is worse / better than "
    "the largest reference size (biased upward; a description), then a one-sided 95% lower confidence bound (0: "
    "nothing certified). With one pretrained checkpoint they cover finetuning noise only.",
    "Training data is what the submitter declared (the submission's 'training_data' field).",
]

HOW_TO_SUBMIT = [
    "Predict every instance of the evaluation set with several finetuning runs (ideally several pretrained "
    "checkpoints too): one row per run and instance with instance_id, pretrain_seed, finetune_seed and pred or "
    "prob_<label> columns, plus a submission.yaml (model, task, split, params, training_data).",
    "Check it: instdecay submit validate my-sub/ (or build it from per-run CSVs or lm-evaluation-harness output with "
    "instdecay submit import-csv / import-lm-eval, which check it too).",
    "Compare it: instdecay evaluate my-sub/; then send the folder to the board's maintainers or publish it as a Hub "
    "dataset and give its id to instdecay leaderboard build --submissions.",
]


def _markdown(board: dict) -> str:
    parts = [f"# Leaderboard (reference: {_md_cell(board['reference'])})\n",
             f"Reference manifest sha256 {board['reference_manifest_sha256'][:16]}…, built with "
             f"{board['reference_built_with']}; board built {board['built']} with {board['built_with']}.\n",
             *[f"- {_md_cell(line)}" for line in EXPLANATION], ""]
    for sec in board["sections"]:
        parts.append(f"## {sec['task']} / {sec['split']}\n")
        parts.append("| " + " | ".join(h for _, h, _ in COLUMNS) + " |")
        parts.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        parts += ["| " + " | ".join(_md_cell(r[k]) for k, _, _ in COLUMNS) + " |" for r in sec["rows"]]
        parts.append("")
    parts += ["## How to submit\n", *[f"{k}. {_md_cell(step)}" for k, step in enumerate(HOW_TO_SUBMIT, 1)], ""]
    return "\n".join(parts) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:right;vertical-align:top}th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}
td.text,th.text{text-align:left}tr.reference{color:#555;background:#fafafa}img{max-width:100%}
.wrap{overflow-x:auto;max-width:100%}td.long{max-width:40em;white-space:normal;text-align:left}nav a{margin-right:1em}
section.tab{margin-top:1em}input#filter{margin:.5em 0;padding:3px;width:20em}
th[data-order=asc]::after{content:" ▲"}th[data-order=desc]::after{content:" ▼"}
nav a.active{font-weight:bold;text-decoration:none;border-bottom:2px solid #333}.note{font-size:13px;color:#444}
code{background:#f3f3f3;padding:0 3px}footer{margin-top:2em;font-size:12px;color:#666}"""

_SCRIPT = """function sortBy(th){var table=th.closest('table'),body=table.tBodies[0],col=th.cellIndex;
var rows=Array.prototype.slice.call(body.rows),asc=th.getAttribute('data-order')!=='asc',num=th.dataset.numeric==='1';
th.closest('tr').querySelectorAll('th').forEach(function(h){h.removeAttribute('data-order');});
th.setAttribute('data-order',asc?'asc':'desc');
rows.sort(function(a,b){var x=a.cells[col].dataset.value,y=b.cells[col].dataset.value,c;
if(num){var nx=parseFloat(x),ny=parseFloat(y);nx=isNaN(nx)?Infinity:nx;ny=isNaN(ny)?Infinity:ny;c=nx-ny;}
else{c=x.localeCompare(y);}return asc?c:-c;});rows.forEach(function(r){body.appendChild(r);});}
document.querySelectorAll('table.board th').forEach(function(th){th.addEventListener('click',function(){sortBy(th);});});
var box=document.getElementById('filter');if(box){box.addEventListener('input',function(){var q=box.value.toLowerCase();
document.querySelectorAll('table.board tbody tr').forEach(function(r){
r.style.display=r.cells[1].textContent.toLowerCase().indexOf(q)>=0?'':'none';});});}
function show(id){document.querySelectorAll('section.tab').forEach(function(s){s.hidden=s.id!==id;});
document.querySelectorAll('nav a').forEach(function(a){a.classList.toggle('active',a.getAttribute('href')==='#'+id);});}
var tabs=document.querySelectorAll('nav a');tabs.forEach(function(a){a.addEventListener('click',function(e){
e.preventDefault();show(a.getAttribute('href').slice(1));history.replaceState(null,'',a.getAttribute('href'));});});
if(tabs.length){var want=document.getElementById(location.hash.slice(1));
show(want&&want.classList.contains('tab')?want.id:tabs[0].getAttribute('href').slice(1));}"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n<script>{_SCRIPT}</script></body></html>\n")


def _prose(text: str) -> str:
    """Plain text as HTML, with 'quoted' names and commands shown as code."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"(instdecay [a-z -]+[a-z/-]*|submission\.yaml|prob_&lt;label&gt;)", r"<code>\1</code>", escaped)


def _footer(board: dict, prefix: str = "") -> str:
    esc = html.escape
    return (f"<footer>Reference {esc(board['reference'])} (manifest sha256 "
            f"<code>{esc(board['reference_manifest_sha256'][:16])}…</code>, built with "
            f"{esc(board['reference_built_with'])}); board built {esc(board['built'])} with {esc(board['built_with'])}. "
            f"Downloads: <a href=\"{prefix}leaderboard.json\">leaderboard.json</a> · "
            f"<a href=\"{prefix}leaderboard.md\">leaderboard.md</a></footer>")


def _index_html(board: dict) -> str:
    esc = html.escape
    nav, sections = [], []
    for sec in board["sections"]:
        anchor = f"{sec['task']}__{sec['split']}"
        nav.append(f'<a href="#{esc(anchor)}">{esc(sec["task"])} / {esc(sec["split"])}</a>')
        head = "".join(f'<th data-numeric="{int(num)}" class="{"" if num else "text"}">{esc(h)}</th>'
                       for _, h, num in COLUMNS)
        body = []
        for r in sec["rows"]:
            cells = []
            for key, _, num in COLUMNS:
                value = r[key]
                sort_value = value if num and isinstance(value, (int, float)) else ("" if value is None else value)
                text = esc(_cell(value))
                if key == "model" and r["slug"]:
                    text = f'<a href="models/{esc(r["slug"])}.html">{text}</a>'
                cls = "text" if not num else ""
                cells.append(f'<td class="{cls}" data-value="{esc(str(sort_value))}">{text}</td>')
            body.append(f'<tr class="{r["kind"]}">{"".join(cells)}</tr>')
        sections.append(f'<section class="tab" id="{esc(anchor)}"><h2>{esc(sec["task"])} / {esc(sec["split"])}</h2>'
                        f'<div class="wrap"><table class="board"><thead><tr>{head}</tr></thead>'
                        f'<tbody>{"".join(body)}</tbody></table></div></section>')
    how_to_read = "".join(f"<li>{_prose(line)}</li>" for line in EXPLANATION)
    how_to_submit = "".join(f"<li>{_prose(step)}</li>" for step in HOW_TO_SUBMIT)
    page = (f"<h1>Leaderboard</h1><p>Models ranked against the reference ladder ({esc(board['reference'])}), one "
            f"table per task and evaluation set. Click a column header to sort; see <a href=\"#how-to-read\">how to "
            f"read it</a> and <a href=\"#how-to-submit\">how to submit</a>.</p><nav>{''.join(nav)}</nav>"
            f"<input id=\"filter\" placeholder=\"filter models by name\" aria-label=\"filter models by name\">"
            f"{''.join(sections)}<h2 id=\"how-to-read\">How to read it</h2><ul class=\"note\">{how_to_read}</ul>"
            f"<h2 id=\"how-to-submit\">How to submit</h2><ol class=\"note\">{how_to_submit}</ol>{_footer(board)}")
    return _page("instdecay leaderboard", page)


_HEADERS = {"reference": "reference size", "delta_accuracy": "Δ accuracy (submission − reference)",
            "delta_ci_low": "95% CI low", "delta_ci_high": "95% CI high", "position": "position",
            "decay": "decay (paper)", "decay_lcb": "decay 95% LCB", "decay_lcb_rigorous": "decay 95% LCB (rigorous)",
            "improve": "improve (paper)", "improve_lcb": "improve 95% LCB", "design": "compared design",
            "instance_id": "instance", "label": "gold label", "text": "text", "accuracy_submission": "accuracy (submission)"}


def _header(key: str) -> str:
    if key.startswith("accuracy_"):
        return _HEADERS.get(key, f"accuracy ({key[len('accuracy_'):]})")
    return _HEADERS.get(key, key.replace("_", " "))


def _link(key: str, value: object) -> str:
    esc = html.escape
    text = str(value)
    if key == "url" and text.startswith(("https://", "http://")):
        return f'<a href="{esc(text)}" rel="nofollow noopener">{esc(text)}</a>'
    if key == "hub_model_id":
        return f'<a href="https://huggingface.co/{esc(text)}" rel="nofollow noopener">{esc(text)}</a>'
    return esc(text)


def _metadata_rows(sub: dict) -> str:
    esc = html.escape
    rows = []
    for key, value in sub.items():
        if key == "runs" and isinstance(value, list):
            value = f"{len(value)} runs (details in report.json)"
        elif key == "files":
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        rows.append(f'<tr><th class="text">{esc(str(key).replace("_", " "))}</th>'
                    f'<td class="long">{_link(key, value)}</td></tr>')
    if "training_data" not in sub:
        rows.append(f'<tr><th class="text">training data</th><td class="long">{NOT_STATED}</td></tr>')
    return "".join(rows)


def _table(rows: list[dict], columns: list[str]) -> str:
    esc = html.escape
    head = "".join(f'<th class="text">{esc(_header(c))}</th>' for c in columns)

    def cls(column: str, value: object) -> str:
        return "long" if column == "text" else "" if isinstance(value, (int, float)) else "text"

    body = "".join("<tr>" + "".join(f'<td class="{cls(c, r.get(c))}">{esc(_cell(r.get(c)))}</td>' for c in columns)
                   + "</tr>" for r in rows)
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _detail_html(e: _Entry) -> str:
    esc = html.escape
    result, sub = e.result, e.result["submission"]
    acc = result["accuracy"][0]
    notes = "".join(f"<p><em>{esc(n)}</em></p>" for n in result["notes"])
    versus_cols = ["reference", "delta_accuracy", "delta_ci_low", "delta_ci_high", "position", "decay", "decay_lcb",
                   "decay_lcb_rigorous", "improve", "improve_lcb", "design"]
    worst = result["worst_instances"]
    worst_cols = list(worst[0]) if worst else []
    plots_html = "".join(f'<p><img src="{esc(e.slug)}/{esc(name)}" alt="{esc(name)}"></p>' for name in result["plots"])
    page = (f'<p><a href="../index.html">← leaderboard</a></p><h1>{esc(str(sub["model"]))}</h1>'
            f'<p>Accuracy {acc["accuracy"]:.4f} (95% CI {acc["ci_low"]:.4f}–{acc["ci_high"]:.4f}); '
            f'{esc(acc["ladder_position"])}.</p>{notes}'
            f'<h2>Metadata</h2><table>{_metadata_rows(sub)}</table>'
            f'<h2>Versus each reference size</h2>'
            f'{_table(result["versus"], [c for c in versus_cols if result["versus"] and c in result["versus"][0]])}'
            f'<h2>Instances most confidently worse than the smallest reference size</h2>'
            + (_table(worst, worst_cols) if worst else "<p>None.</p>")
            + f"<h2>Plots</h2>{plots_html}<h2>Downloads</h2><p>"
            f'<a href="{esc(e.slug)}/report.md">report (Markdown)</a> · <a href="{esc(e.slug)}/report.json">JSON</a> · '
            f'<a href="{esc(e.slug)}/model-index.yaml">model-index for a model card</a> · '
            f'<a href="{esc(e.slug)}/eval_results.yaml">.eval_results entry</a></p>')
    return _page(str(sub["model"]), page)
