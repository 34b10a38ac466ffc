"""`instdecay evaluate`: compare a submission with every size of the reference ladder, noise-corrected."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...loaders.glue import HUB_GLUE
from ...loaders.manifest import seed_design
from ...loaders.read import load_instances, load_tensor, read_manifest, resolve
from ..stats._validate import SeedLike, check_rng
from ..stats.decay import DecayBounds
from ..stats.decomposition import decompose
from ..stats.paired import paired_bootstrap
from ... import __version__
from ...atomic import atomic_write_text
from . import plots
from .pairs import pair_bounds
from .report import DECAY_DEFINITION, NEGATIVE_COMPONENTS, REPORT_FORMAT, markdown_table
from ..submissions.assemble import Submission


@dataclass(frozen=True)
class Comparison:
    """The comparison of one submission with a reference ladder (tables and notes, JSON-ready)."""

    submission: dict[str, object]
    accuracy: pd.DataFrame  # the submission's accuracy with a CI, and its place in the ladder
    versus: pd.DataFrame  # one row per reference size
    variance: dict[str, object]
    worst_instances: pd.DataFrame
    notes: list[str]
    curves: dict[str, dict[str, list[float]]] = field(repr=False)
    ladder_accuracy: pd.DataFrame = field(repr=False)
    majority: float | None = None

    def to_dict(self) -> dict[str, object]:
        def records(df: pd.DataFrame) -> list[dict]:
            return json.loads(df.to_json(orient="records"))

        return {"submission": self.submission, "accuracy": records(self.accuracy), "versus": records(self.versus),
                "variance": self.variance, "worst_instances": records(self.worst_instances), "notes": self.notes,
                "ladder_accuracy": records(self.ladder_accuracy)}


def _accuracy_ci(x: np.ndarray, seed_design: str) -> tuple[float, float, float]:
    """Mean accuracy and its 95% t interval over seeds and instances (B - A with A = 0 is B's accuracy)."""
    r = paired_bootstrap(np.zeros_like(x), x, seed_design=seed_design)
    return r.delta, r.ci_low, r.ci_high


def _position(pb) -> str:
    """Where the submission stands against one reference size, from the paired interval."""
    return "above" if pb.ci_low > 0 else "below" if pb.ci_high < 0 else "indistinguishable"


def _bounds(b: DecayBounds, rig: DecayBounds) -> dict[str, object]:
    """Decay / improve bounds of the submission against one reference size on a matched design, plus the
    rigorous LCBs on one 0/1 run per pretraining seed."""
    return {"decay": b.decay, "decay_lcb": b.decay_lcb, "decay_lcb_rigorous": rig.decay_lcb,
            "improve": b.improve, "improve_lcb": b.improve_lcb, "improve_lcb_rigorous": rig.improve_lcb,
            "design": b.design, "rigorous_design": rig.design,
            "noise_submission": b.noise_larger, "noise_reference": b.noise_smaller}


def _disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of instances on which a run of A and a run of B differ in correctness (all run pairs)."""
    ka, kb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    pa, pb = ka.mean(axis=1), kb.mean(axis=1)
    return float((pa * (1 - pb) + pb * (1 - pa)).mean())


def compare(sub: Submission, reference: str | Path, *, revision: str | None = None, n_boot: int = 1000,
            seed: SeedLike = 0, glue_dir: str | Path | None = None, text_from: str | Path = HUB_GLUE,
            top_k: int = 20, workers: int | None = None) -> Comparison:
    """Compare ``sub`` with each reference size on the same task and split.

    For every size: the accuracy difference (submission minus size) with a 95% t interval over both models'
    seeds and the instances, paired (:func:`paired_bootstrap`), and the submission's position from it (above,
    below or indistinguishable); the decay and improve lower bounds with the size as the smaller model and the
    submission as the larger (``decay``: fraction of instances where the submission is worse) on a matched
    design (:func:`decay_bounds` with ``match="subsample"``), as the paper's estimate, a 95% LCB, and a rigorous
    95% LCB on one 0/1 run per pretraining seed; and run-level disagreement. With a single run the bounds are
    not available (they need >= 2 runs to build the random baseline). The statistics assume finetuning seeds may be
    crossed with pretraining seeds unless both the reference's manifest and the submission's ``seed_design`` say
    ``nested``. The bootstraps of the sizes run on ``workers`` threads (default: the available CPUs).
    """
    rng = check_rng(seed)
    folder = resolve(reference, revision)
    manifest = read_manifest(folder)
    entry = manifest["tasks"][sub.task]
    x = sub.correct
    n_runs = sub.n_runs
    notes = []
    if n_runs == 1:
        notes.append("One run only: the decay/improve bounds, seed noise and the loss decomposition need >= 2 runs "
                     "(the random baseline splits runs into halves). Reported: accuracy with an interval over "
                     "instances, and differences against the reference that ignore the submission's seed noise.")
    elif x.shape[1] == 1:
        notes.append("One pretrained checkpoint: the bounds split the submission's finetuning runs, so on the "
                     "submission's side they account for finetuning noise only; they describe this checkpoint, not "
                     "the training recipe.")

    sub_design = "nested" if sub.metadata.get("seed_design") == "nested" else "crossed"
    design = "nested" if seed_design(manifest, sub.task) == sub_design == "nested" else "crossed"
    acc, low, high = _accuracy_ci(x, sub_design)
    ladder_rows, versus_rows, curves = [], [], {}
    tensors = {}
    for size in entry["sizes"]:
        ref = load_tensor(folder, sub.task, sub.split, size, checkpoints="last")
        if not np.array_equal(ref.instance_ids, sub.instance_ids):
            raise ValueError(f"reference {size}: instance order differs from the submission's alignment")
        tensors[size] = ref.values.astype(np.float64)
        runs = tensors[size].mean(axis=0).ravel()
        ladder_rows.append({"size": size, "n_params": entry["grid"][size]["n_params"], "accuracy": float(runs.mean()),
                            "run_std": float(runs.std(ddof=1)) if runs.size > 1 else np.nan, "runs": runs.size})
    bounds = dict(zip(tensors, pair_bounds([(ref, x) for ref in tensors.values()], n_boot=n_boot,
                                           seed_design=design, seed=rng, workers=workers))) if n_runs >= 2 else {}
    for size, ref in tensors.items():
        row: dict[str, object] = {"reference": size}
        pb = paired_bootstrap(ref, x, seed_design=design)
        row.update({"delta_accuracy": pb.delta, "delta_ci_low": pb.ci_low, "delta_ci_high": pb.ci_high,
                    "position": _position(pb), "disagreement": _disagreement(ref, x)})
        if n_runs >= 2:
            b, rigorous = bounds[size]
            row.update(_bounds(b, rigorous))
            curves[size] = {"t": b.thresholds.tolist(), "difference": b.ecdf_difference.tolist(),
                            "baseline": b.ecdf_baseline.tolist(), "decay": b.decay, "t_decay": b.decay_threshold,
                            "decay_lcb": b.decay_lcb}
        versus_rows.append(row)
    ladder = pd.DataFrame(ladder_rows)
    position = _ladder_position(versus_rows)
    accuracy = pd.DataFrame([{"model": sub.name, "accuracy": acc, "ci_low": low, "ci_high": high,
                              "runs": f"{x.shape[1]} x {x.shape[2]}", "ladder_position": position}])

    variance: dict[str, object] = {}
    if x.shape[1] >= 2 and x.shape[2] >= 2:
        variance = {"decomposition": decompose(x, seed_design=sub_design).to_dict()}
    elif x.shape[2] >= 2:
        variance = {"finetune_var": float(x[:, 0].var(axis=1, ddof=1).mean()),
                    "note": "one pretrained checkpoint: finetuning variance only (unbiased, mean over instances)"}
    smallest = entry["sizes"][0]
    gap = tensors[smallest].mean(axis=(1, 2)) - x.mean(axis=(1, 2))
    order = np.argsort(-gap, kind="stable")[:top_k]
    instances = load_instances(folder, sub.task, sub.split, glue_dir=glue_dir)
    if instances["text_a"].isna().any() and glue_dir is None:  # try the Hub's GLUE; offline: no text, said so
        try:
            instances = load_instances(folder, sub.task, sub.split, text_from=text_from)
        except ValueError as exc:
            notes.append(f"Instance text is not in the reference and could not be joined ({exc}); pass --glue-dir "
                         f"(GLUE TSVs) to show it.")
    worst = pd.DataFrame({"instance_id": sub.instance_ids[order],
                          f"accuracy_{smallest}": tensors[smallest].mean(axis=(1, 2))[order],
                          "accuracy_submission": x.mean(axis=(1, 2))[order],
                          "label": instances["label_name"].to_numpy()[order],
                          "text": instances["text_a"].to_numpy()[order]})
    worst = worst[worst[f"accuracy_{smallest}"] > worst["accuracy_submission"]]
    return Comparison(
        submission=dict(sub.metadata) | {"n_pretrain": int(x.shape[1]), "n_finetune": int(x.shape[2]),
                                         "files": list(sub.files), "seed_design_assumed": design},
        accuracy=accuracy, versus=pd.DataFrame(versus_rows), variance=variance, worst_instances=worst, notes=notes,
        curves=curves, ladder_accuracy=ladder,
        majority=float(np.bincount(instances["label"].to_numpy()).max() / len(instances)))


def _ladder_position(rows: list[dict[str, object]]) -> str:
    """'above A, B; indistinguishable from C; below D' from the per-size paired intervals."""
    groups = {k: [r["reference"] for r in rows if r["position"] == k] for k in ("above", "indistinguishable", "below")}
    if len(groups["above"]) == len(rows):
        return "above every reference size"
    if len(groups["below"]) == len(rows):
        return "below every reference size"
    words = {"above": "above", "indistinguishable": "indistinguishable from", "below": "below"}
    return "; ".join(f"{words[k]} {', '.join(v)}" for k, v in groups.items() if v)


def headline(c: Comparison) -> str:
    """One plain-language sentence: where the submission stands and what it does to instances, against the
    largest reference size."""
    a = c.accuracy.iloc[0]
    text = f"{c.submission['model']} has accuracy {a['accuracy']:.3f} (95% CI {a['ci_low']:.3f}-{a['ci_high']:.3f}), "
    text += f"{a['ladder_position']}."
    last = c.versus.iloc[-1]
    if "decay_lcb" in c.versus.columns and last["decay_lcb"] is not None and not pd.isna(last["decay_lcb"]):
        text += (f" Against {last['reference']}, it is worse on at least {last['decay_lcb']:.1%} and better on at least "
                 f"{last['improve_lcb']:.1%} of the instances (95% lower confidence bounds, seed noise corrected).")
    return text


VERSUS_COLUMNS = ["reference", "delta_accuracy", "delta_ci_low", "delta_ci_high", "position", "decay", "decay_lcb",
                  "decay_lcb_rigorous", "improve", "improve_lcb", "improve_lcb_rigorous", "disagreement"]


def format_comparison(c: Comparison) -> str:
    lines = [f"{c.submission['model']} on {c.submission['task']} / {c.submission['split']}", headline(c), *c.notes, "",
             c.accuracy.to_string(index=False, float_format=lambda v: f"{v:.4f}"), ""]
    cols = [k for k in VERSUS_COLUMNS if k in c.versus.columns]
    lines += ["versus each reference size (delta = submission - reference; decay = fraction of instances where the "
              "submission is worse)", c.versus[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")]
    return "\n".join(lines)


def write_comparison(c: Comparison, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and PNG plots (ECDFs as in the paper's Figure 4; accuracy vs size)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots_written = []
    name = str(c.submission["model"])
    if c.curves:
        sizes = list(c.curves)
        chosen = [sizes[0]] + ([sizes[-1]] if len(sizes) > 1 else [])
        plots.ecdf(out / plots.ECDF_PNG, [
            {"title": plots.ecdf_title(f"vs {size}", c.curves[size]["decay"], c.curves[size]["decay_lcb"]),
             "t": c.curves[size]["t"], "difference": c.curves[size]["difference"],
             "baseline": c.curves[size]["baseline"], "label": f"ΔAcc (submission − {size})"} for size in chosen])
        plots_written.append(plots.ECDF_PNG)
    lad, a = c.ladder_accuracy, c.accuracy.iloc[0]
    params = c.submission.get("params")
    plots.accuracy_by_size(out / plots.ACCURACY_PNG, list(lad["size"]), lad["accuracy"], lad["run_std"],
                           evaluation_set=f"{c.submission['task']} / {c.submission['split']}",
                           params=list(lad["n_params"]), majority=c.majority,
                           submission=(name, a["accuracy"], a["ci_low"], a["ci_high"],
                                       params if isinstance(params, int) else None))
    plots_written.append(plots.ACCURACY_PNG)

    versus = c.versus[[k for k in VERSUS_COLUMNS if k in c.versus.columns]]
    first = c.versus.iloc[0]
    design = (f"Bounds compare both sides on a matched design: {first['design']} (the larger design is subsampled "
              f"repeatedly and averaged); the rigorous bounds on {first['rigorous_design']}. Seed noise: submission "
              f"{first['noise_submission']}; reference {first['noise_reference']}. Seed design assumed: "
              f"{c.submission['seed_design_assumed']}.\n") if "design" in c.versus.columns else ""
    md = [f"# {c.submission['model']}: instance-level comparison\n", f"**{headline(c)}**\n",
          f"Task `{c.submission['task']}`, split `{c.submission['split']}`; runs: {c.accuracy.iloc[0]['runs']} "
          f"(pretraining x finetuning seeds).\n", *[f"> {n}\n" for n in c.notes],
          "## Accuracy\n", markdown_table(c.accuracy), "", "## Reference ladder\n", markdown_table(c.ladder_accuracy), "",
          "## Versus each reference size\n",
          "`delta_accuracy` = submission − reference, with a 95% t interval over both models' seeds and the "
          "instances (paired); `position` reads it: above, below, or indistinguishable (the interval contains 0). "
          f"{DECAY_DEFINITION.replace('at the larger size', 'for the submission than for the reference size')} "
          "`*_rigorous`: on one 0/1 run per pretraining seed, where Theorem 1 holds exactly. `disagreement`: the "
          "mean fraction of instances on which a run of each disagree.\n", design,
          markdown_table(versus), ""]
    if c.variance:
        parts = c.variance.get("decomposition", c.variance)
        table = pd.DataFrame([{k: v for k, v in parts.items() if isinstance(v, (int, float)) or v is None}])
        md += ["## Variance (the submission's own seeds)\n", markdown_table(table.dropna(axis=1, how="all")), "",
               c.variance.get("note", NEGATIVE_COMPONENTS), ""]
    md += ["## Instances most confidently worse than the smallest reference size\n",
           markdown_table(c.worst_instances) if not c.worst_instances.empty else "None.", "",
           "## Plots\n", *[f"![{p}]({p})\n" for p in plots_written]]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    payload = {"tool": f"instdecay {__version__}", "report_format": REPORT_FORMAT, "headline": headline(c), **c.to_dict()}
    atomic_write_text(out / "report.json", json.dumps(payload, indent=2, allow_nan=False, default=str) + "\n")
    return [out / "report.md", out / "report.json", *(out / p for p in plots_written)]
