"""`instdecay leaderboard build`: evaluate every submission against the reference and write a static site.

Each sub-folder of the submissions folder is one submission (prediction files + ``submission.yaml``). Results
are cached by the content hash of the submission (and of the reference and settings), so unchanged submissions
are not recomputed. Output: ``leaderboard.json``, ``leaderboard.md``, ``index.html`` (a sortable table, no
external resources: it works from a ``file://`` URL) and ``models/<name>.html`` detail pages with their plots.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
from datetime import date
from pathlib import Path

from .. import __version__
from ..loaders.read import read_manifest, resolve
from .compare import compare, write_comparison
from ..atomic import atomic_write_text
from .report import markdown_table
from .submission import SubmissionError, content_hash, load_submission

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
COLUMNS = [
    ("model", "model"), ("kind", "kind"), ("params", "params"), ("runs", "runs (P × F)"),
    ("accuracy", "accuracy"), ("ci", "± (95% CI / std)"), ("position", "position vs reference (95% CI)"),
    ("finetune_var", "finetuning variance"),
    ("decay_vs_smallest", "decay vs smallest (paper / LCB)"), ("decay_vs_largest", "decay vs largest (paper / LCB)"),
    ("improve_vs_largest", "improve vs largest (paper / LCB)"), ("submitted", "submitted"),
]


def _bound(row: dict | None, kind: str) -> str:
    if not row or row.get(kind) is None:
        return "–"
    return f"{row[kind]:.3f} / {row[f'{kind}_lcb']:.3f}"


def _submission_rows(result: dict, slug: str) -> dict:
    versus = result["versus"]
    acc = result["accuracy"][0]
    var = result["variance"]
    finetune_var = (var.get("decomposition") or {}).get("finetune_var", var.get("finetune_var"))
    sub = result["submission"]
    return {
        "model": sub["model"], "slug": slug, "kind": "submission", "params": sub.get("params"),
        "runs": f"{sub['n_pretrain']} × {sub['n_finetune']}", "accuracy": acc["accuracy"],
        "ci": f"[{acc['ci_low']:.4f}, {acc['ci_high']:.4f}]", "position": acc["ladder_position"],
        "finetune_var": finetune_var,
        "decay_vs_smallest": _bound(versus[0], "decay"), "decay_vs_largest": _bound(versus[-1], "decay"),
        "improve_vs_largest": _bound(versus[-1], "improve"), "submitted": str(sub.get("submitted") or result["evaluated"]),
    }


def _reference_rows(folder: Path, task: str, split: str) -> list[dict]:
    from .decomposition import decompose
    from ..loaders.read import load_tensor

    manifest = read_manifest(folder)
    entry = manifest["tasks"][task]
    rows = []
    for size in entry["sizes"]:
        x = load_tensor(folder, task, split, size, checkpoints="last").values.astype(float)
        runs = x.mean(axis=0).ravel()
        fv = decompose(x).finetune_var if min(x.shape[1:]) >= 2 else None
        rows.append({"model": size, "slug": None, "kind": "reference", "params": entry["grid"][size]["n_params"],
                     "runs": f"{x.shape[1]} × {x.shape[2]}", "accuracy": float(runs.mean()),
                     "ci": f"± {runs.std(ddof=1):.4f} (std)" if runs.size > 1 else "–", "position": "reference",
                     "finetune_var": fv,
                     "decay_vs_smallest": "–", "decay_vs_largest": "–", "improve_vs_largest": "–", "submitted": "–"})
    return rows


def build_leaderboard(submissions: str | Path, reference: str | Path, out: str | Path, *, n_boot: int = 1000,
                      seed: int = 0, revision: str | None = None) -> dict:
    """Evaluate every submission (cached), rank them with the reference sizes, write the site; return the JSON."""
    submissions, out = Path(submissions), Path(out)
    folder = resolve(reference, revision)
    ref_hash = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    entries, errors, names = [], [], {}
    for path in sorted(submissions.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_dir():
            errors.append(f"{path.name}: each submission must be a folder (prediction files + submission.yaml)")
            continue
        if not SLUG.match(path.name):
            errors.append(f"{path.name}: folder names must be letters, digits, '_', '.' or '-' (used in output paths)")
            continue
        key = hashlib.sha256(f"{content_hash(path)}|{ref_hash}|{n_boot}|{seed}|{__version__}".encode()).hexdigest()
        cached = cache / f"{key}.json"
        if cached.exists() and (out / "models" / path.name / "report.json").exists():
            result = json.loads(cached.read_text())
        else:
            try:
                sub = load_submission(path, folder)
            except (SubmissionError, ValueError) as exc:
                errors.append(f"{path.name}: {exc}")
                continue
            c = compare(sub, folder, n_boot=n_boot, seed=seed)
            result = c.to_dict() | {"task": sub.task, "split": sub.split, "evaluated": date.today().isoformat()}
            write_comparison(c, out / "models" / path.name)
            atomic_write_text(cached, json.dumps(result, indent=2, allow_nan=False, default=str))
        model = result["submission"]["model"]
        if model in names:
            errors.append(f"{path.name}: model name {model!r} is already used by {names[model]}; not overwritten")
            continue
        names[model] = path.name
        entries.append((path.name, result))

    tasks = {(r["task"], r["split"]) for _, r in entries}
    if len(tasks) > 1:
        raise ValueError(f"submissions span several task/splits {sorted(tasks)}; build one leaderboard per split")
    manifest = read_manifest(folder)
    task, split = tasks.pop() if tasks else _default_split(manifest)
    rows = _reference_rows(folder, task, split) + [_submission_rows(r, slug) for slug, r in entries]
    rows.sort(key=lambda r: -r["accuracy"])
    board = {"task": task, "split": split, "reference": str(reference), "rows": rows, "rejected": errors,
             "built_with": f"instdecay {__version__}"}
    atomic_write_text(out / "leaderboard.json", json.dumps(board, indent=2, allow_nan=False, default=str) + "\n")
    _write_markdown(board, out)
    _write_html(board, out, {slug: r for slug, r in entries})
    live = dict(entries)
    for stale in (out / "models").glob("*") if (out / "models").exists() else []:
        if stale.is_dir() and stale.name not in live:
            shutil.rmtree(stale)
        elif stale.suffix == ".html" and stale.stem not in live:
            stale.unlink()
    return board


def _default_split(manifest: dict) -> tuple[str, str]:
    task = sorted(manifest["tasks"])[0]
    return task, next(iter(manifest["tasks"][task]["eval_sets"]))


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _write_markdown(board: dict, out: Path) -> None:
    import pandas as pd

    df = pd.DataFrame([{label: _cell(r[key]) for key, label in COLUMNS} for r in board["rows"]])
    text = [f"# Leaderboard: {board['task']} / {board['split']}\n",
            "Accuracy at each run's last checkpoint. Submissions: ± is a 95% t interval over seeds and "
            "instances; reference sizes: std over runs. Position: above / below / indistinguishable from each "
            "reference size, from the paired 95% interval of the accuracy difference. Decay/improve: lower bounds on the fraction of instances where "
            "the model is worse/better than the reference size (paper estimate / 95% LCB); with one pretrained "
            "checkpoint they cover finetuning noise only.\n", markdown_table(df), ""]
    if board["rejected"]:
        text += ["## Rejected\n", *[f"- {e}" for e in board["rejected"]], ""]
    atomic_write_text(out / "leaderboard.md", "\n".join(text) + "\n")


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{cursor:pointer;background:#f3f3f3}
td:first-child,th:first-child{text-align:left}tr.reference{color:#555;background:#fafafa}img{max-width:100%}"""

_SORT_JS = """document.querySelectorAll('th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-order') !== 'asc';
    th.closest('tr').querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    th.setAttribute('data-order', asc ? 'asc' : 'desc');
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-value'), y = b.cells[col].getAttribute('data-value');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _write_html(board: dict, out: Path, results: dict[str, dict]) -> None:
    esc = html.escape
    head = "".join(f"<th>{esc(label)}</th>" for _, label in COLUMNS)
    body_rows = []
    for r in board["rows"]:
        cells = []
        for key, _ in COLUMNS:
            value = r[key]
            sort_value = value if isinstance(value, (int, float)) else (str(value).split(" ")[0] if value else "")
            text = esc(_cell(value))
            if key == "model" and r["slug"]:
                text = f'<a href="models/{esc(r["slug"])}.html">{text}</a>'
            cells.append(f'<td data-value="{esc(str(sort_value))}">{text}</td>')
        body_rows.append(f'<tr class="{r["kind"]}">{"".join(cells)}</tr>')
    rejected = "".join(f"<li>{esc(e)}</li>" for e in board["rejected"])
    index = (f"<h1>Leaderboard: {esc(board['task'])} / {esc(board['split'])}</h1>"
             f"<p>Click a column header to sort. Submissions: ± is a 95% t interval over seeds and instances; "
             f"position: above / below / indistinguishable from each reference size (paired 95% interval); "
             f"reference sizes: std over runs. Decay/improve: lower bounds on the fraction of instances worse/better "
             f"than the reference size (paper estimate / 95% LCB).</p>"
             f"<table id=\"board\"><thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
             + (f"<h2>Rejected submissions</h2><ul>{rejected}</ul>" if rejected else "")
             + f"<script>{_SORT_JS}</script>")
    atomic_write_text(out / "index.html", _page(f"Leaderboard {board['task']} / {board['split']}", index))
    for slug, result in results.items():
        sub = result["submission"]
        meta = "".join(f"<li>{esc(str(k))}: {esc(str(v))}</li>" for k, v in sub.items())
        notes = "".join(f"<p><em>{esc(n)}</em></p>" for n in result["notes"])
        versus = "".join(
            "<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row.values()) + "</tr>" for row in result["versus"])
        versus_head = "".join(f"<th>{esc(k)}</th>" for k in (result["versus"][0] if result["versus"] else {}))
        plots = "".join(f'<p><img src="{slug}/{name}" alt="{name}"></p>'
                        for name in ("ecdf.png", "accuracy_vs_size.png") if (out / "models" / slug / name).exists())
        page = (f"<p><a href=\"../index.html\">← leaderboard</a></p><h1>{esc(str(sub['model']))}</h1><ul>{meta}</ul>"
                f"{notes}<h2>Versus each reference size</h2><table><thead><tr>{versus_head}</tr></thead>"
                f"<tbody>{versus}</tbody></table><h2>Plots</h2>{plots}"
                f"<p><a href=\"{slug}/report.md\">full report (Markdown)</a> · "
                f"<a href=\"{slug}/report.json\">JSON</a></p>")
        atomic_write_text(out / "models" / f"{slug}.html", _page(str(sub["model"]), page))
