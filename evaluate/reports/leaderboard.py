"""`instdecay leaderboard build`: evaluate every submission against the reference and write a static site.

Submissions come from folders of submission folders, single submission folders, or Hub dataset ids. Each is
evaluated in isolation (a bad one is listed as rejected, with a short escaped reason, and the board is still
written) and cached by the content hash of its files, the reference and the settings. The site has one section
per task and evaluation set of the reference: models ranked with ties (rank = 1 + the number of models whose
accuracy is above it by a paired 95% interval), a filter box, sortable columns, and one detail page per
submission with its metadata, comparisons, worst instances and plots, plus exports for the Hub (a ``model-index``
snippet for a model card and ``.eval_results`` entries).

Writes stay inside ``--out``: only files this command wrote are replaced or removed (their list is kept in
``.leaderboard-files.json``), no path under ``--out`` is followed through a symbolic link, every file is written
atomically, and concurrent builds into one folder take turns on a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from ... import __version__
from ...atomic import atomic_write
from ...loaders.read import load_tensor, read_manifest, resolve
from .compare import compare, write_comparison
from ..stats.paired import paired_bootstrap
from ..submissions.load import SubmissionError, content_hash, load_submission, resolve_submission
from ..submissions.problems import excerpt

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
OWNED = ".leaderboard-files.json"
MAX_REASON = 300
COLUMNS = [  # key, header, numeric
    ("rank", "rank", True), ("model", "model", False), ("kind", "kind", False), ("params", "params", True),
    ("runs", "runs (P × F)", False), ("accuracy", "accuracy", True), ("ci", "95% CI / ± std", False),
    ("position", "vs reference sizes (paired 95% CI)", False),
    ("decay_vs_largest", "decay vs largest: paper / 95% LCB", False),
    ("improve_vs_largest", "improve vs largest: paper / 95% LCB", False), ("submitted", "submitted", False),
]


class _Site:
    """Writes under ``out`` only through real folders, atomically, and remembers what it wrote."""

    def __init__(self, out: Path):
        self.out = out
        self.written: set[str] = set()

    def folder(self, rel: str) -> Path:
        path = self.out
        for part in Path(rel).parts:
            path = path / part
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise ValueError(f"{path}: a symbolic link or a file where the leaderboard writes a folder; remove it")
            path.mkdir(exist_ok=True)
        return path

    def write(self, rel: str, data: str | bytes) -> None:
        parent = Path(rel).parent
        path = (self.folder(str(parent)) if parent.parts else self.out) / Path(rel).name
        payload = data.encode("utf-8") if isinstance(data, str) else data
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))
        self.written.add(rel)

    def adopt(self, rel: str) -> None:
        """Record a file written by another function into a folder from :meth:`folder`."""
        self.written.add(rel)

    def remove_stale(self, previous: list[str]) -> None:
        """Delete the files this command wrote last time and not this time; never anything else."""
        for rel in sorted(set(previous) - self.written):
            path = self.out / rel
            if ".." in Path(rel).parts or not path.is_file() or path.is_symlink():
                continue
            if any(p.is_symlink() for p in [*path.parents][: len(Path(rel).parts) - 1]):
                continue
            path.unlink()
            parent = path.parent
            while parent != self.out and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


@contextmanager
def _locked(out: Path):
    """Take turns with other builds into the same folder (the lock is released if a build dies)."""
    with open(out / ".leaderboard.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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


def _evaluate(slug: str, path: Path, folder: Path, site: _Site, key_base: str, n_boot: int, seed: int,
              glue_dir: str | Path | None, reference_id: str) -> _Entry:
    key = hashlib.sha256(f"{content_hash(path)}|{key_base}".encode()).hexdigest()
    cached, scores_file = f"cache/{key}.json", f"cache/{key}.npy"
    report = f"models/{slug}"
    outputs = [f"{report}/{n}" for n in ("report.md", "report.json", "model-index.yaml", "eval_results.yaml")]
    if all((site.out / p).is_file() for p in [cached, scores_file, *outputs]):
        result = json.loads((site.out / cached).read_text(encoding="utf-8"))
        scores = np.load(site.out / scores_file, allow_pickle=False)
        for rel in [cached, scores_file, *outputs, *(f"{report}/{p}" for p in result["plots"])]:
            site.adopt(rel)
        return _Entry(slug, result, scores)
    sub = load_submission(path, folder)
    c = compare(sub, folder, n_boot=n_boot, seed=seed, glue_dir=glue_dir)
    target = site.folder(report)
    written = write_comparison(c, target)
    result = c.to_dict() | {"task": sub.task, "split": sub.split, "evaluated": date.today().isoformat(),
                            "plots": [p.name for p in written if p.suffix == ".png"], "reference_id": reference_id}
    for p in written:
        site.adopt(f"{report}/{p.name}")
    site.write(f"{report}/model-index.yaml", _model_index(result))
    site.write(f"{report}/eval_results.yaml", _eval_results(result))
    site.write(cached, json.dumps(result, indent=2, allow_nan=False, default=str) + "\n")
    buffer = _npy_bytes(sub.correct.astype(np.int8))
    site.write(scores_file, buffer)
    return _Entry(slug, result, sub.correct)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def _dataset_id(result: dict) -> str:
    return str(result["reference_id"])


def _model_index(result: dict) -> str:
    """A ``model-index`` block for the submission's model card (huggingface_hub's own serialisation)."""
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    sub, acc = result["submission"], result["accuracy"][0]
    entry = EvalResult(task_type="text-classification", task_name="Text Classification",
                       dataset_type=_dataset_id(result), dataset_name=f"instdecay {sub['task']}",
                       dataset_config=sub["task"], dataset_split=sub["split"], metric_type="accuracy",
                       metric_value=round(float(acc["accuracy"]), 6),
                       metric_name=f"accuracy (mean of {sub['n_pretrain']} x {sub['n_finetune']} runs; 95% CI "
                                   f"{acc['ci_low']:.4f}-{acc['ci_high']:.4f})",
                       source_name="instdecay leaderboard", source_url="https://github.com/instdecay/instdecay")
    return yaml.safe_dump({"model-index": eval_results_to_model_index(str(sub["model"]), [entry])}, sort_keys=False)


def _eval_results(result: dict) -> str:
    """``.eval_results/<name>.yaml`` entries for the model repo (huggingface_hub's serialisation)."""
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    sub, acc = result["submission"], result["accuracy"][0]
    entry = EvalResultEntry(dataset_id=_dataset_id(result), task_id=f"{sub['task']}/{sub['split']}",
                            value=round(float(acc["accuracy"]), 6),
                            date=str(result["evaluated"]), source_url="https://github.com/instdecay/instdecay",
                            source_name="instdecay leaderboard",
                            notes=f"mean over {sub['n_pretrain']} x {sub['n_finetune']} runs, last checkpoint")
    return yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False)


def _bound(row: dict | None, kind: str) -> str:
    if not row or row.get(kind) is None:
        return "–"
    return f"{row[kind]:.3f} / {row[f'{kind}_lcb']:.3f}"


def _rank(scores: list[np.ndarray]) -> list[int]:
    """1 + the number of models whose accuracy is above each one by a paired 95% t interval (ties share ranks)."""
    n = len(scores)
    above = np.zeros(n, dtype=int)
    for i in range(n):
        for j in range(i + 1, n):  # a loop over pairs of models, not instances
            r = paired_bootstrap(scores[i], scores[j])
            if r.ci_low > 0:
                above[i] += 1
            elif r.ci_high < 0:
                above[j] += 1
    return (1 + above).tolist()


def _section(folder: Path, manifest: dict, task: str, split: str, entries: list[_Entry]) -> dict:
    entry = manifest["tasks"][task]
    rows, scores = [], []
    for size in entry["sizes"]:
        x = load_tensor(folder, task, split, size, checkpoints="last").values.astype(float)
        runs = x.mean(axis=0).ravel()
        rows.append({"model": size, "slug": None, "kind": "reference", "params": entry["grid"][size]["n_params"],
                     "runs": f"{x.shape[1]} × {x.shape[2]}", "accuracy": float(runs.mean()),
                     "ci": f"± {runs.std(ddof=1):.4f} (std)" if runs.size > 1 else "–", "position": "reference",
                     "decay_vs_largest": "–", "improve_vs_largest": "–", "submitted": "–"})
        scores.append(x)
    for e in entries:
        versus, acc, sub = e.result["versus"], e.result["accuracy"][0], e.result["submission"]
        rows.append({"model": str(sub["model"]), "slug": e.slug, "kind": "submission", "params": sub.get("params"),
                     "runs": f"{sub['n_pretrain']} × {sub['n_finetune']}", "accuracy": acc["accuracy"],
                     "ci": f"[{acc['ci_low']:.4f}, {acc['ci_high']:.4f}]", "position": acc["ladder_position"],
                     "decay_vs_largest": _bound(versus[-1], "decay"), "improve_vs_largest": _bound(versus[-1], "improve"),
                     "submitted": str(sub.get("submitted") or e.result["evaluated"])})
        scores.append(e.scores)
    for row, rank in zip(rows, _rank(scores)):
        row["rank"] = rank
    rows.sort(key=lambda r: (r["rank"], -r["accuracy"]))
    return {"task": task, "split": split, "rows": rows}


def build_leaderboard(submissions, reference: str | Path, out: str | Path, *, n_boot: int = 1000, seed: int = 0,
                      revision: str | None = None, task: str | None = None, split: str | None = None,
                      glue_dir: str | Path | None = None) -> dict:
    """Evaluate every submission (cached), rank them with the reference sizes per task and evaluation set, and
    write the site into ``out``; return the board (as written to ``leaderboard.json``)."""
    sources = [submissions] if isinstance(submissions, (str, Path)) else list(submissions)
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out}: a symbolic link or a file; give a folder for the site")
    out.mkdir(parents=True, exist_ok=True)
    folder = resolve(reference, revision)
    manifest = read_manifest(folder)
    ref_hash = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    key_base = f"{ref_hash}|{n_boot}|{seed}|{__version__}"
    found, rejected = _sources(sources)
    reference_id = str(reference) if not Path(reference).exists() else "instdecay/predictions"
    sections_wanted = [(t, s) for t, e in sorted(manifest["tasks"].items()) for s in e["eval_sets"]
                       if (task is None or t == task) and (split is None or s == split)]
    if not sections_wanted:
        raise ValueError(f"--task/--split {task}/{split}: not in the reference; it has "
                         f"{[(t, list(e['eval_sets'])) for t, e in manifest['tasks'].items()]}")
    with _locked(out):
        site = _Site(out)
        try:
            previous = json.loads((out / OWNED).read_text(encoding="utf-8")) if (out / OWNED).is_file() else []
        except ValueError:
            previous = []
        entries, names = [], {}
        for slug, path in found:
            try:
                e = _evaluate(slug, path, folder, site, key_base, n_boot, seed, glue_dir, reference_id)
            except (ValueError, OSError) as exc:  # one bad submission never stops the board
                rejected.append(f"{excerpt(slug, 60)}: {_short(exc)}")
                continue
            model = str(e.result["submission"]["model"])
            if model in names:
                rejected.append(f"{excerpt(slug, 60)}: model name {excerpt(model, 60)} is already used by {names[model]}")
                continue
            names[model] = slug
            entries.append(e)
        count = {ts: sum((e.result["task"], e.result["split"]) == ts for e in entries) for ts in sections_wanted}
        sections_wanted.sort(key=lambda ts: (-count[ts], ts))  # sections with submissions first
        sections = [_section(folder, manifest, t, s, [e for e in entries if (e.result["task"], e.result["split"]) == (t, s)])
                    for t, s in sections_wanted]
        outside = [e for e in entries if (e.result["task"], e.result["split"]) not in sections_wanted]
        rejected += [f"{e.slug}: evaluated on {e.result['task']} / {e.result['split']}, not shown (--task/--split)"
                     for e in outside]
        board = {"reference": _shown(reference), "built_with": f"instdecay {__version__}", "sections": sections,
                 "rejected": rejected}
        site.write("leaderboard.json", json.dumps(board, indent=2, allow_nan=False, default=str) + "\n")
        site.write("leaderboard.md", _markdown(board))
        site.write("index.html", _index_html(board))
        for e in entries:
            site.write(f"models/{e.slug}.html", _detail_html(e, out))
        site.remove_stale(previous)
        site.write(OWNED, json.dumps(sorted(site.written | {OWNED}), indent=1) + "\n")
    return board


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
    """Markdown table cell text with HTML and table syntax neutralised."""
    text = html.escape(_cell(value), quote=False).replace("|", "\\|").replace("`", "\\`")
    return " ".join(text.split())


def _markdown(board: dict) -> str:
    parts = [f"# Leaderboard (reference: {_md_cell(board['reference'])})\n", _EXPLANATION, ""]
    for sec in board["sections"]:
        parts.append(f"## {sec['task']} / {sec['split']}\n")
        parts.append("| " + " | ".join(h for _, h, _ in COLUMNS) + " |")
        parts.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        parts += ["| " + " | ".join(_md_cell(r[k]) for k, _, _ in COLUMNS) + " |" for r in sec["rows"]]
        parts.append("")
    if board["rejected"]:
        parts += ["## Rejected\n", *[f"- {_md_cell(e)}" for e in board["rejected"]], ""]
    return "\n".join(parts) + "\n"


_EXPLANATION = (
    "Accuracy at each run's last checkpoint. Rank: 1 + the number of models whose accuracy is higher by a paired "
    "95% interval (equal ranks: not distinguishable). Submissions show a 95% t interval over seeds and instances; "
    "reference sizes the std over runs. `vs reference sizes`: above / below / indistinguishable from each size "
    "(paired 95% interval of the difference). Decay / improve: the paper's estimate of the fraction of instances "
    "where the model is worse / better than the largest reference size, then a one-sided 95% lower confidence "
    "bound (0: nothing certified) on a matched design; with one pretrained checkpoint they cover finetuning "
    "noise only.")

_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1240px}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:right;vertical-align:top}th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}
td.text,th.text{text-align:left}tr.reference{color:#555;background:#fafafa}img{max-width:100%}
.wrap{overflow-x:auto}td.long{max-width:34em;white-space:normal;text-align:left}nav a{margin-right:1em}
section.tab{margin-top:1em}input#filter{margin:.5em 0;padding:3px;width:20em}
th[data-order=asc]::after{content:" ▲"}th[data-order=desc]::after{content:" ▼"}
nav a.active{font-weight:bold;text-decoration:none;border-bottom:2px solid #333}p.note{font-size:13px;color:#444}"""

_SCRIPT = """function sortBy(th){var table=th.closest('table'),body=table.tBodies[0],col=th.cellIndex;
var rows=Array.prototype.slice.call(body.rows),asc=th.getAttribute('data-order')!=='asc',num=th.dataset.numeric==='1';
th.closest('tr').querySelectorAll('th').forEach(function(h){h.removeAttribute('data-order');});
th.setAttribute('data-order',asc?'asc':'desc');
rows.sort(function(a,b){var x=a.cells[col].dataset.value,y=b.cells[col].dataset.value,c;
if(num){var nx=parseFloat(x),ny=parseFloat(y);nx=isNaN(nx)?Infinity:nx;ny=isNaN(ny)?Infinity:ny;c=nx-ny;}
else{c=x.localeCompare(y);}return asc?c:-c;});rows.forEach(function(r){body.appendChild(r);});}
document.querySelectorAll('th').forEach(function(th){th.addEventListener('click',function(){sortBy(th);});});
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
    rejected = "".join(f"<li>{esc(e)}</li>" for e in board["rejected"])
    page = (f"<h1>Leaderboard</h1><p>Models ranked against the reference ladder ({esc(board['reference'])}), one "
            f"table per task and evaluation set. Click a column header to sort; see <a href=\"#how-to-read\">how to "
            f"read it</a>.</p><nav>{''.join(nav)}</nav><input id=\"filter\" placeholder=\"filter models by name\" "
            f"aria-label=\"filter models by name\">{''.join(sections)}"
            + (f"<h2>Rejected submissions</h2><ul>{rejected}</ul>" if rejected else "")
            + f'<h2 id="how-to-read">How to read it</h2><p class="note">{esc(_EXPLANATION)}</p>')
    return _page("instdecay leaderboard", page)


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
        rows.append(f'<tr><th class="text">{esc(str(key))}</th><td class="long">{_link(key, value)}</td></tr>')
    return "".join(rows)


def _table(rows: list[dict], columns: list[str]) -> str:
    esc = html.escape
    head = "".join(f'<th class="text">{esc(c)}</th>' for c in columns)
    def cls(column: str, value: object) -> str:
        return "long" if column == "text" else "" if isinstance(value, (int, float)) else "text"

    body = "".join("<tr>" + "".join(f'<td class="{cls(c, r.get(c))}">{esc(_cell(r.get(c)))}</td>' for c in columns)
                   + "</tr>" for r in rows)
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _detail_html(e: _Entry, out: Path) -> str:
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
            + f"<h2>Plots</h2>{plots_html}<h2>Files</h2><p>"
            f'<a href="{esc(e.slug)}/report.md">report (Markdown)</a> · <a href="{esc(e.slug)}/report.json">JSON</a> · '
            f'<a href="{esc(e.slug)}/model-index.yaml">model-index for a model card</a> · '
            f'<a href="{esc(e.slug)}/eval_results.yaml">.eval_results entry</a></p>')
    return _page(str(sub["model"]), page)
