"""Fill the dataset card template (`dataset_card.md` at the top level) with a release's statistics."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path, PurePosixPath
from string import Template

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ..evaluate.reports.report import markdown_table
from ..loaders import schema

DEFAULT_REPO_ID = "instdecay/predictions"
# The 2021 design: 5 sizes x 10 pretraining x 5 finetuning seeds x 4 checkpoints on ~200k instances in all.
FULL_SCALE_ROWS = 5 * 10 * 5 * 4 * 200_000


LICENSE_PATH = "LICENSE.md"
EVAL_PATH = "eval.yaml"


def license_file() -> str:
    """The release's LICENSE.md: instdecay's MIT licence, and what it does not cover."""
    mit = files("instdecay").joinpath("LICENSE").read_text(encoding="utf-8")
    return ("# License\n\nThe predictions, instance ids, hashes and run metadata of this dataset are released under "
            "the MIT licence below. The evaluation instances (and any text joined back from them) belong to their "
            "source datasets, whose terms apply; please cite them.\n\n```\n" + mit.strip() + "\n```\n")


LICENSE_TEXT = (
    "The predictions, ids, hashes and metadata are released under the MIT licence of instdecay (`LICENSE.md`). The "
    "evaluation instances belong to their source datasets, whose terms apply to any text joined back; cite them.")


def configs(manifest: dict) -> list[dict]:
    """The YAML ``configs`` list: per task a predictions config (splits: evaluation sets; the first task is the
    default) and ``<task>_instances`` (splits: evaluation sets); ``runs`` (splits: tasks)."""
    out = []
    for k, (task, entry) in enumerate(sorted(manifest["tasks"].items())):
        splits = [{"split": eval_set, "path": f"data/{task}/{eval_set}/*.parquet"}
                  for eval_set in entry["eval_sets"]
                  if any(p.startswith(f"data/{task}/{eval_set}/") for p in manifest["files"])]
        config = {"config_name": task, "data_files": splits}
        if k == 0:
            config["default"] = True
        out.append(config)
    for task, entry in sorted(manifest["tasks"].items()):
        out.append({"config_name": f"{task}_instances", "data_files": [
            {"split": eval_set, "path": schema.instances_path(task, eval_set)} for eval_set in entry["eval_sets"]]})
    out.append({"config_name": "runs", "data_files": [
        {"split": task, "path": schema.runs_path(task)} for task in sorted(manifest["tasks"])]})
    return out


def dataset_info(folder: Path, manifest: dict) -> list[dict]:
    """The card's YAML ``dataset_info`` block, in the datasets library's own form: per config its features (read
    from the parquet files' schemas, class labels included) and splits (rows from the manifest, uncompressed bytes
    from the row groups), with the download size (parquet bytes)."""
    from datasets import Features
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from huggingface_hub import DatasetCardData

    infos = {}
    for config in configs(manifest):
        splits, features, download = SplitDict(), None, 0
        for entry in config["data_files"]:
            paths = [p for p in manifest["files"] if PurePosixPath(p).match(entry["path"])]
            rows = sum(manifest["files"][p]["rows"] for p in paths)
            uncompressed = 0
            for p in paths:
                metadata = pq.read_metadata(folder / p)
                uncompressed += sum(metadata.row_group(k).total_byte_size for k in range(metadata.num_row_groups))
                download += manifest["files"][p]["bytes"]
            features = features or Features.from_arrow_schema(pq.read_schema(folder / paths[0]))
            splits.add(SplitInfo(entry["split"], num_bytes=uncompressed, num_examples=rows))
        infos[config["config_name"]] = DatasetInfo(features=features, splits=splits, download_size=download,
                                                   dataset_size=sum(split.num_bytes for split in splits.values()))
    card = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(card)
    return card.to_dict()["dataset_info"]


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    return markdown_table(pd.DataFrame(rows, columns=header))


def _size_category(n_rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")):
        if n_rows < limit:
            return name
    return "n>1B"


def render_card(manifest: dict, runs: pa.Table, *, meta: dict | None = None, info: list[dict] | None = None,
                manifest_hash: str = "") -> str:
    """The card text: YAML header (configs, ``info`` as ``dataset_info``, metadata) and the template's sections
    filled in, with ``manifest_hash`` (the sha256 of manifest.json) as the pin users load with.

    ``meta`` may set ``pretty_name``, ``description``, ``license``, ``tags``, ``repo_id`` and ``analysis``
    (Markdown placed after the accuracy table).
    """
    meta = dict(meta or {})
    tasks = manifest["tasks"]
    pred_files = {p: f for p, f in manifest["files"].items() if p.startswith("data/")}
    n_rows = sum(f["rows"] for f in pred_files.values())
    n_bytes = sum(f["bytes"] for f in pred_files.values())
    header = {
        "pretty_name": meta.get("pretty_name", "instdecay instance-level predictions"),
        "license": meta.get("license", "other"),
        **({"license_name": meta.get("license_name", "instdecay-predictions"),
            "license_link": meta.get("license_link", "LICENSE.md")} if meta.get("license", "other") == "other" else {}),
        "language": ["en"],
        **({"source_datasets": meta["source_datasets"]} if meta.get("source_datasets") else {}),
        "task_categories": ["text-classification"],
        "size_categories": [_size_category(n_rows)],
        "tags": meta.get("tags", ["instance-level-evaluation", "seed-variance", "model-scaling"]),
        "configs": configs(manifest),
        **({"dataset_info": info} if info else {}),
    }

    grid_rows, n_runs, n_instances = [], 0, 0
    for task, entry in sorted(tasks.items()):
        n_instances += sum(entry["eval_sets"].values())
        for size in entry["sizes"]:
            g = entry["grid"][size]
            n_runs += g["n_runs"] * len(g["checkpoints"])
            grid_rows.append([task, size, g["family"], f"{g['n_params']:,}", len(g["pretrain_seeds"]),
                              len(g["finetune_seeds"]), len(g["checkpoints"]), g["n_runs"]])
    summary = _md_table(
        ["task", "evaluation sets (instances)", "labels"],
        [[t, ", ".join(f"`{s}` ({n:,})" for s, n in e["eval_sets"].items()), ", ".join(e["label_names"])]
         for t, e in sorted(tasks.items())])
    summary += (f"\n\n{n_runs:,} runs (checkpoints of finetuning runs), {n_instances:,} evaluation instances, "
                f"{n_rows:,} prediction rows in {len(pred_files)} parquet files ({n_bytes / 2**20:.1f} MiB).")

    acc_rows = _accuracy_rows(runs, manifest)
    per_row = n_bytes / max(n_rows, 1)
    full_scale = (f"This release stores {per_row:.1f} bytes per prediction row (zstd parquet, probabilities at "
                  f"{manifest.get('probability_precision', 'float32')} precision). At the 2021 paper's full scale (3 tasks, 5 sizes × 10 pretraining × 5 "
                  f"finetuning seeds × 4 checkpoints, ~200k evaluation instances in all: {FULL_SCALE_ROWS / 1e6:.0f}M "
                  f"rows) that is about {per_row * FULL_SCALE_ROWS / 2**30:.1f} GiB, in 3 × ~3 evaluation sets × "
                  f"5 sizes ≈ 45 files of a few hundred MB at most: far below the Hub's per-folder file limit.")
    default_config = header["configs"][0]["config_name"]
    fields = {
        "yaml_header": yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        "pretty_name": header["pretty_name"],
        "built_with": manifest["built_with"],
        "format_version": manifest["format_version"],
        "description": meta.get("description", ""),
        "summary": summary,
        "grid_table": _md_table(["task", "size", "family", "parameters", "pretraining seeds", "finetuning seeds",
                                 "checkpoints", "finetuning runs"], grid_rows),
        "accuracy_table": _md_table(["task", "size", "evaluation set", "accuracy", "std over runs", "runs"], acc_rows),
        "analysis": meta.get("analysis", ""),
        "repo_id": meta.get("repo_id", DEFAULT_REPO_ID),
        "default_config": default_config,
        "full_scale": full_scale,
        "license_text": meta.get("license_text", LICENSE_TEXT),
        "manifest_sha256": manifest_hash,
    }
    template = files("instdecay").joinpath("dataset_card.md").read_text(encoding="utf-8")
    return Template(template).substitute(fields)


def _accuracy_rows(runs: pa.Table, manifest: dict) -> list[list[object]]:
    rows = []
    records = runs.to_pylist()
    for task, entry in sorted(manifest["tasks"].items()):
        for size in entry["sizes"]:
            g = entry["grid"][size]
            last = max(g["checkpoints"])
            selected = [r for r in records if r["task"] == task and r["size"] == size and r["checkpoint"] == last]
            for eval_set in entry["eval_sets"]:
                acc = np.array([a["accuracy"] for r in selected for a in r["accuracy"] if a["eval_set"] == eval_set])
                if acc.size:
                    std = f"{acc.std(ddof=1):.4f}" if acc.size > 1 else "–"
                    rows.append([task, size, eval_set, f"{acc.mean():.4f}", std, acc.size])
    return rows


def eval_yaml(manifest: dict, meta: dict) -> str:
    """The Hub's benchmark file: one task per task and evaluation set (``<task>_<evaluation set>``, the
    ``task_id`` of the ``.eval_results`` entries the leaderboard exports), with its config, split and metric."""
    import yaml

    tasks = [{"id": f"{task}_{split}", "name": f"{task} / {split}", "config": task, "split": split,
              "metric": "accuracy", "description": f"mean accuracy over a model's runs on the {n:,} instances of "
                                                   f"{task} / {split}, checked against the instances' hashes"}
             for task, entry in sorted(manifest["tasks"].items()) for split, n in entry["eval_sets"].items()]
    return yaml.safe_dump({"name": meta.get("pretty_name", "instdecay predictions"),
                           "description": "Per-instance predictions of a ladder of model sizes with pretraining and "
                                          "finetuning seeds; models are compared on the same instances.",
                           "tasks": tasks}, sort_keys=False)


def card_meta_from(path) -> dict:
    """Optional card metadata: a JSON object of card fields."""
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object of card fields")
    return meta
