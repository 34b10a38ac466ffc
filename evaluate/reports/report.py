"""Write a ladder analysis as Markdown, JSON and PNG plots, and format it for the console."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import atomic_write_text
from . import plots
from .ladder import LadderReport


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (floats to 4 decimals)."""
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def bounds_matrix(report: LadderReport, kind: str = "") -> pd.DataFrame:
    """The paper's Table 9 layout: row s1, column s2; above the diagonal the improving fraction's lower bound
    (s1 -> s2), below it the decaying fraction's (row = larger, column = smaller). ``kind`` is ``""`` (paper
    estimate), ``"_lcb"`` or ``"_lcb_rigorous"``."""
    m = pd.DataFrame(0.0, index=list(report.sizes), columns=list(report.sizes))
    for row in report.bounds.itertuples(index=False):
        m.loc[row.smaller, row.larger] = getattr(row, f"improve{kind}")
        m.loc[row.larger, row.smaller] = getattr(row, f"decay{kind}")
    return m


def report_tables(report: LadderReport) -> dict[str, pd.DataFrame]:
    unbiased = report.decomposition[report.decomposition["estimator"] == "unbiased"].drop(columns="estimator")
    if not unbiased.empty and unbiased["checkpoint_var"].isna().all():
        unbiased = unbiased.drop(columns="checkpoint_var")
    bounds = report.bounds[["smaller", "larger", "decay", "decay_lcb", "decay_lcb_rigorous",
                            "improve", "improve_lcb", "improve_lcb_rigorous", "design"]]
    mom_cols = [c for c in ("smaller", "middle", "larger", "naive_overall", "corrected_overall")
                if c in report.momentum.columns]
    return {
        "Accuracy per size (last checkpoint; run_std = std over runs)": report.accuracy,
        "Loss decomposition (unbiased, Theorem 2; means over instances)": unbiased,
        "Seed disagreement (fraction of instances two runs disagree on)": report.disagreement,
        "Decay / improve lower bounds (paper's all-runs estimate; 95% LCB on that design; rigorous 95% LCB on "
        "one run per pretraining seed)": bounds,
        "Paper estimates in the paper's Table 9 layout (above diagonal: improve; below: decay)": bounds_matrix(
            report).reset_index(names="s1 \\ s2"),
        "Rigorous 95% LCBs in the Table 9 layout": bounds_matrix(report, "_lcb_rigorous").reset_index(
            names="s1 \\ s2"),
        "Momentum (Pearson r of successive gains; overall)": report.momentum[mom_cols],
    }


def format_report(report: LadderReport) -> str:
    """Plain-text tables for the console."""
    parts = [report.description, f"{report.n_instances} instances, sizes: {', '.join(report.sizes)}", ""]
    for title, df in report_tables(report).items():
        if df.empty:
            continue
        parts += [title, df.to_string(index=False, float_format=lambda v: f"{v:.4f}"), ""]
    return "\n".join(parts)


def plot_extreme_pair(report: LadderReport, path: Path) -> None:
    """Save the ECDF plot of instance differences, smallest vs largest size (the paper's Figure 4)."""
    b, first, last = report.extreme_pair, report.sizes[0], report.sizes[-1]
    name = f"{report.evaluation_set or 'ladder'}: {first} → {last}"
    plots.ecdf(path, [{"title": plots.ecdf_title(name, b.decay, b.decay_lcb), "t": b.thresholds,
                       "difference": b.ecdf_difference, "baseline": b.ecdf_baseline,
                       "label": f"ΔAcc ({last} − {first})"}])


def _plot_files(report: LadderReport, out: Path) -> list[str]:
    plot_extreme_pair(report, out / plots.ECDF_PNG)
    acc = report.accuracy
    plots.accuracy_by_size(out / plots.ACCURACY_PNG, list(acc["size"]), acc["accuracy"], acc["run_std"],
                           evaluation_set=report.evaluation_set or "ladder", params=report.n_params,
                           majority=report.majority)
    files = [plots.ECDF_PNG, plots.ACCURACY_PNG]
    dec = report.decomposition[report.decomposition["estimator"] == "unbiased"]
    if not dec.empty:
        plots.decomposition(out / plots.DECOMPOSITION_PNG, list(dec["size"]),
                            {c: dec[c].astype(float).to_numpy() for c in ("bias2", "pretrain_var", "finetune_var",
                                                                          "checkpoint_var")},
                            f"Loss decomposition (unbiased): {report.evaluation_set or 'ladder'}")
        files.append(plots.DECOMPOSITION_PNG)
    return files


def write_report(report: LadderReport, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and PNG plots into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plot_files(report, out)
    md = [f"# Instance-level analysis\n\n{report.description}\n",
          f"{report.n_instances} instances; sizes (smallest to largest): {', '.join(report.sizes)}.\n"]
    for title, df in report_tables(report).items():
        if not df.empty:
            md += [f"## {title}\n", markdown_table(df), ""]
    md += ["## Plots\n", *[f"![{p}]({p})\n" for p in plots]]
    md += [
        "## How to read this\n",
        "- `decay` is the paper's estimate of a lower bound on the fraction of instances whose expected accuracy "
        "(over pretraining and finetuning seeds) is lower at the larger size; `improve` of the fraction where it is "
        "higher. It maximises a noisy gap over thresholds, so it is biased upward and is positive even when "
        "nothing decays: read it as a description, not as evidence.",
        "- `decay_lcb` is a one-sided 95% lower confidence bound on that fraction, valid for the best threshold "
        "(a bootstrap over whole pretraining seeds, simultaneous over thresholds). It uses every run, averaging "
        "each pretraining seed's finetuning runs, as the paper's 50-run estimate does; Theorem 1 then holds only "
        "approximately. `decay_lcb_rigorous` uses one 0/1 run per pretraining seed (independent 0/1 units, so "
        "Theorem 1 holds exactly) for the same target. 0 means no decay is certified at 95%: it is not evidence "
        "that nothing decays.",
        "- Decomposition: loss = bias2 + pretrain_var + finetune_var (+ checkpoint_var), each estimated without "
        "the upward bias of plug-in variances (Theorem 2).",
        "- Momentum `naive` is the paper's estimate (biased negative by shared middle-size noise); `corrected` "
        "uses disjoint halves of the middle size's seeds and disattenuates.",
    ]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=2, default=_json_default, allow_nan=False) + "\n")
    return [out / "report.md", out / "report.json", *(out / p for p in plots)]


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
