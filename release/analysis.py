"""The paper's analyses of a built release, as Markdown (and plots) for its dataset card."""

from __future__ import annotations

from pathlib import Path

from ..evaluate.reports.ladder import analyze_ladder
from ..evaluate.reports.report import markdown_table, plot_extreme_pair, report_tables
from ..loaders.manifest import seed_design
from ..loaders.read import load_tensor


def _verdict(row) -> str:
    lcb, rigorous = row["decay_lcb"], row["decay_lcb_rigorous"]
    text = f"the one-sided 95% lower confidence bound on the decaying fraction is {lcb:.4f} (all runs)"
    if rigorous is not None:
        text += f" and {rigorous:.4f} (rigorous: one run per pretraining seed)"
    if lcb > 0:
        return text + ": this ladder shows instances that decay after correcting for pretraining and finetuning noise"
    return text + ": the decay that the paper's estimator reports is not distinguishable from seed noise here"


def analysis_markdown(folder: Path, manifest: dict, *, n_boot: int = 1000, progress: bool = False) -> str:
    """Accuracy, decomposition, bounds for every pair and momentum per task and evaluation set, with the CDF
    plot of smallest vs largest written to ``figures/``. Sizes need >= 2 pretraining and finetuning seeds."""
    parts = ["## Analyses (Zhong et al. 2021, computed with instdecay on this release)\n"]
    for task, entry in sorted(manifest["tasks"].items()):
        sizes = [s for s in entry["sizes"] if len(entry["grid"][s]["pretrain_seeds"]) >= 2
                 and len(entry["grid"][s]["finetune_seeds"]) >= 2]
        for split in entry["eval_sets"]:
            ladder, skipped = {}, []
            for s in sizes:
                try:
                    ladder[s] = load_tensor(folder, task, split, s).values
                except ValueError as exc:  # an incomplete grid: analyse the complete sizes only, and say so
                    skipped.append(f"- {s} left out: {exc}")
            if len(ladder) < 2:
                continue
            if skipped:
                parts += [f"Sizes left out of the {task} / {split} analysis:\n", *skipped, ""]
            report = analyze_ladder(ladder, n_boot=n_boot, seed=0, progress=progress, seed_design=seed_design(manifest, task),
                                    description=f"{task} / {split}", evaluation_set=f"{task} / {split}")
            figure = Path("figures") / f"cdf_{task}_{split}.png"
            plot_extreme_pair(report, folder / figure)
            parts.append(f"### {task} / {split} ({report.n_instances:,} instances)\n")
            first, last = report.sizes[0], report.sizes[-1]
            extreme = report.bounds[(report.bounds.smaller == first) & (report.bounds.larger == last)].iloc[0]
            parts.append(f"**{first} → {last}**: paper estimate of the decaying fraction "
                         f"{extreme['decay']:.4f}; {_verdict(extreme)}. "
                         f"Improving fraction: paper {extreme['improve']:.4f}, 95% LCB {extreme['improve_lcb']:.4f}.\n")
            for title, df in report_tables(report).items():
                if not df.empty:
                    parts += [f"**{title}**\n", markdown_table(df), ""]
            parts.append(f"![ECDF of instance differences, {first} vs {last}]({figure.as_posix()})\n")
    return "\n".join(parts) if len(parts) > 1 else ""
