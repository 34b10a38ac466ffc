"""Write a ladder analysis as Markdown, JSON and PNG plots, and format it for the console."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ... import __version__
from ...atomic import atomic_write_text
from . import plots
from .ladder import LadderReport

REPORT_FORMAT = 2  # 2: tool and format version, headline, seed design, JSON objects (no Python reprs)


def _fmt(value: object) -> str:
    """Numbers as the console shows them: 4 decimals (NaN as "–")."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4f}"
    return str(value)


DECAY_DEFINITION = (
    "`decay` is the paper's estimate of the fraction of instances whose expected accuracy (over pretraining and "
    "finetuning seeds) is lower at the larger size: the largest gap between the ECDF of the instance differences "
    "and that of a random baseline (Zhong et al. 2021, Sec. 3-4). Maximising a noisy gap biases it upward (it is "
    "positive even when nothing decays): read it as a description. `decay_lcb` is a one-sided 95% lower confidence "
    "bound on the same fraction; 0 means no decay is certified, not that nothing decays. `improve` and "
    "`improve_lcb` are the same for instances that are better at the larger size.")
NEGATIVE_COMPONENTS = (
    "Each variance component is an unbiased estimate (Theorem 2; with crossed finetuning seeds a two-way "
    "random-effects estimate): it subtracts the noise the plain variance would count, so a component whose true "
    "value is near 0 comes out slightly negative about half the time. A negative mean is evidence that the "
    "component is small, not an error.")


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
    for column in ("checkpoint_var", "finetune_shared_var"):
        if not unbiased.empty and unbiased[column].isna().all():
            unbiased = unbiased.drop(columns=column)
    unbiased = unbiased.drop(columns="seed_design", errors="ignore")
    bounds = report.bounds[["smaller", "larger", "decay", "decay_lcb", "decay_lcb_rigorous",
                            "improve", "improve_lcb", "improve_lcb_rigorous", "design"]]
    mom_cols = [c for c in ("smaller", "middle", "larger", "naive_overall", "corrected_overall")
                if c in report.momentum.columns]
    return {
        "Accuracy per size (last checkpoint; run_std = std over runs)": report.accuracy,
        "Loss decomposition (unbiased; means over instances)": unbiased,
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


def headline(report: LadderReport) -> str:
    """One plain-language sentence on the smallest and largest sizes."""
    acc = report.accuracy.set_index("size")["accuracy"]
    first, last = report.sizes[0], report.sizes[-1]
    row = report.bounds[(report.bounds.smaller == first) & (report.bounds.larger == last)].iloc[0]
    better = "more" if acc[last] > acc[first] else "less"
    text = (f"{last} is {better} accurate than {first} on average ({acc[last]:.3f} vs {acc[first]:.3f}); instance "
            f"by instance, ")
    if row["decay_lcb"] is not None and row["decay_lcb"] > 0:
        text += (f"it is worse on at least {row['decay_lcb']:.1%} of the {report.n_instances:,} instances (95% "
                 f"confidence, after correcting for seed noise)")
    else:
        text += "no instance on which it is worse is certified at 95% confidence after correcting for seed noise"
    if row["improve_lcb"] is not None:
        text += f", and better on at least {row['improve_lcb']:.1%}"
    return text + "."


def write_report(report: LadderReport, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and PNG plots into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plot_files(report, out)
    md = [f"# Instance-level analysis: {report.evaluation_set or 'ladder'}\n", f"**{headline(report)}**\n",
          f"{report.description}\n",
          f"{report.n_instances} instances; sizes (smallest to largest): {', '.join(report.sizes)}; seed design "
          f"assumed: {report.seed_design}.\n"]
    for title, df in report_tables(report).items():
        if not df.empty:
            md += [f"## {title}\n", markdown_table(df), ""]
    md += ["## Plots\n", *[f"![{p}]({p})\n" for p in plots]]
    md += [
        "## How to read this\n",
        f"- {DECAY_DEFINITION}",
        "- `decay_lcb` uses every run (each pretraining seed's finetuning runs averaged, as the paper's 50-run "
        "estimate does; Theorem 1 then holds approximately); `decay_lcb_rigorous` uses one 0/1 run per pretraining "
        "seed (from distinct finetuning seeds unless the seeds are nested), where Theorem 1 holds exactly. With seed "
        "design `crossed` (the default unless the data says `nested`) the baseline and the bootstrap also carry "
        "finetuning seeds shared by every pretrained model.",
        f"- Decomposition: loss = bias2 + pretrain_var + finetune_var (+ checkpoint_var); `finetune_shared_var` is "
        f"the part of finetune_var shared by every pretrained model (0 when seeds are nested). {NEGATIVE_COMPONENTS}",
        "- Momentum `naive` is the paper's estimate (biased negative by shared middle-size noise); `corrected` "
        "uses disjoint blocks of the seeds and disattenuates.",
    ]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    payload = {"tool": f"instdecay {__version__}", "report_format": REPORT_FORMAT, "headline": headline(report),
               **report.to_dict()}
    atomic_write_text(out / "report.json", json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n")
    return [out / "report.md", out / "report.json", *(out / p for p in plots)]


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
