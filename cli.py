"""instdecay: instance-level evaluation of pretrained language-model ladders.

Each subcommand is a thin wrapper: it parses arguments and calls the library.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from . import __version__


def _report(args: argparse.Namespace) -> int:
    from .evaluate.reports.ladder import analyze_ladder
    from .evaluate.reports.report import format_report, write_report

    out = Path(args.out or ("instdecay-report-simulated" if args.simulated else "instdecay-report"))
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder; give a folder for report.md, report.json and plots")
    for name, ladder, details in _ladders(args):
        report = analyze_ladder(ladder, n_boot=args.n_boot, seed=args.seed, **details)
        print(format_report(report))
        folder = out / name if name else out
        written = write_report(report, folder)
        print(f"wrote {len(written)} files to {folder}: {', '.join(p.name for p in written)}\n")
    return 0


def _ladders(args: argparse.Namespace):
    """(sub-folder, {size: scores}, description) for the simulated ladder or each split of a reference."""
    if args.simulated:
        from .evaluate.stats.simulate import simulate

        sim = simulate(n_instances=args.instances, n_pretrain=10, n_finetune=5, seed=args.seed)
        first, last = sim.sizes[0], sim.sizes[-1]
        yield "", sim.scores, {"evaluation_set": "simulated", "description": (
            f"SIMULATED ladder (instdecay.evaluate.simulate, seed {args.seed}): 5 sizes x 10 pretraining x 5 "
            f"finetuning seeds on {args.instances} instances, with known ground truth. True decaying fraction "
            f"{first} -> {last}: {sim.true_decay(first, last):.4f}; true improving fraction: "
            f"{sim.true_improve(first, last):.4f}.")}
        return
    from .loaders import DEFAULT_REFERENCE, load_instances, load_tensor, read_manifest, resolve
    from .loaders.manifest import seed_design

    source = args.reference or DEFAULT_REFERENCE
    folder = resolve(source, args.revision)
    manifest = read_manifest(folder)
    shown = _shown_source(source)
    for task, entry in sorted(manifest["tasks"].items()):
        for split in args.split or list(entry["eval_sets"]):
            if split not in entry["eval_sets"]:
                raise ValueError(f"--split {split!r}: task {task} has evaluation sets {list(entry['eval_sets'])}")
            ladder = {size: load_tensor(folder, task, split, size).values for size in entry["sizes"]}
            grid = entry["grid"][entry["sizes"][0]]
            labels = load_instances(folder, task, split)["label"]
            yield f"{task}_{split}", ladder, {
                "evaluation_set": f"{task} / {split}",
                "n_params": [entry["grid"][s]["n_params"] for s in entry["sizes"]],
                "majority": float(labels.value_counts(normalize=True).max()),
                "seed_design": seed_design(manifest, task),
                "description": (
                    f"Data: {shown}, task {task}, evaluation set {split}: sizes {', '.join(entry['sizes'])}, "
                    f"{len(grid['pretrain_seeds'])} pretraining x {len(grid['finetune_seeds'])} finetuning seeds x "
                    f"{len(grid['checkpoints'])} checkpoints (analyses use the last checkpoint).")}


def _shown_source(source) -> str:
    """How a dataset is named in outputs: a Hub id as is, a local folder by its name (no absolute paths)."""
    from .loaders import DEFAULT_REFERENCE

    path = Path(source)
    if path.resolve() == Path(DEFAULT_REFERENCE).resolve():
        return "the shipped reference (reference/sst2-cpu)"
    return path.name if path.exists() else str(source)


def _release_build(args: argparse.Namespace) -> int:
    from .release import build_release

    result = build_release(args.shards, args.out, include_text=not args.no_text, analysis=not args.no_analysis,
                           card_meta=args.card, full_precision=args.full_precision)
    print(f"built {result.out_dir}: {result.n_runs} finetuning runs, {result.n_rows:,} prediction rows, "
          f"{len(result.manifest['files'])} parquet files; loaded back with datasets.load_dataset")
    return 0


def _release_validate(args: argparse.Namespace) -> int:
    from .release import validate_release

    problems = validate_release(args.folder)
    for problem in problems[:20]:
        print(problem)
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more problem(s)")
    if problems:
        return 2
    print(f"{args.folder}: valid")
    return 0


def _release_push(args: argparse.Namespace) -> int:
    from .release import push_release

    plan = push_release(args.folder, args.repo_id, revision=args.revision, private=args.private,
                        create_pr=args.create_pr, tag=args.tag, dry_run=args.dry_run)
    if not args.dry_run:
        print(f"pushed {len(plan.files)} files to {args.repo_id} in {len(plan.batches)} commit(s)")
    return 0


def _import_2021(args: argparse.Namespace) -> int:
    from .generate.import_2021 import import_2021

    n = import_2021(args.source, args.shards, args.task)
    print(f"imported {n} finetuning runs from {args.source} into {args.shards}")
    return 0


def _generate_holdout(args: argparse.Namespace) -> int:
    from .generate.holdout import write_holdout

    split = write_holdout(args.train, args.out, column=args.column, exclude=args.exclude or (),
                          fraction=args.fraction, seed=args.seed)
    print(f"wrote {args.out}: {len(split.heldout):,} held-out rows ({split.n_heldout_sentences:,} of "
          f"{split.n_sentences:,} sentences), {len(split.pool):,} pool rows, {len(split.removed):,} in neither; "
          f"overlap of the pool with the evaluation texts: {split.overlap}")
    return 0


def _generate_run(args: argparse.Namespace) -> int:
    from .generate.finetune import run_finetune
    from .generate.spec import load_spec

    size, p, f = _parse_run(args.run)
    path = run_finetune(load_spec(args.spec), size, p, f, device=args.device, precision=args.precision)
    print(f"wrote {path}")
    return 0


def _parse_run(run: str) -> tuple[str, int, int]:
    import re

    m = re.fullmatch(r"(?P<size>.+)__p(?P<p>-?\d+)__f(?P<f>-?\d+)", run)
    if not m:
        raise ValueError(f"--run: expected <size>__p<pretrain seed>__f<finetune seed>, e.g. L2-H384__p0__f1; found {run!r}")
    return m["size"], int(m["p"]), int(m["f"])


def _generate_pretrain(args: argparse.Namespace) -> int:
    from .generate.pretrain import pretrain
    from .generate.spec import load_spec

    print(f"wrote {pretrain(load_spec(args.spec), args.size, args.seed, device=args.device, precision=args.precision)}")
    return 0


def _generate_grid(args: argparse.Namespace) -> int:
    from .generate.grid import run_grid, summary

    outcomes = run_grid(args.spec, executor=args.executor, workers=args.workers, device=args.device,
                        ray_address=args.ray_address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                        runs_per_process=args.runs_per_process, precision=args.precision)
    print(summary(outcomes))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _metadata_flags(args: argparse.Namespace) -> dict[str, object]:
    return {k: getattr(args, k) for k in ("model", "task", "split", "params", "pretrained", "url", "contact",
                                          "hub_model_id", "hub_revision", "training_data", "seed_design")}


def _submit_validate(args: argparse.Namespace) -> int:
    from .evaluate.submissions import SubmissionError, load_submission
    from .loaders import DEFAULT_REFERENCE

    try:
        sub = load_submission(args.submission, args.reference or DEFAULT_REFERENCE, metadata=_metadata_flags(args),
                              revision=args.revision)
    except SubmissionError as exc:
        print(exc.report())
        return 2
    print(f"{args.submission}: valid — {sub.name}, task {sub.task}, split {sub.split}, "
          f"{sub.correct.shape[1]} x {sub.correct.shape[2]} runs on {sub.correct.shape[0]} instances")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate.reports.compare import compare, format_comparison, write_comparison
    from .evaluate.submissions import SubmissionError, load_submission
    from .loaders import DEFAULT_REFERENCE

    reference = args.reference or DEFAULT_REFERENCE
    try:
        sub = load_submission(args.submission, reference, metadata=_metadata_flags(args), revision=args.revision)
    except SubmissionError as exc:
        print(exc.report())
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    c = compare(sub, reference, revision=args.revision, n_boot=args.n_boot, seed=args.seed, glue_dir=args.glue_dir)
    print(format_comparison(c))
    written = write_comparison(c, args.out)
    print(f"wrote {', '.join(p.name for p in written)} to {Path(args.out)}")
    return 0


def _wrote_submission(write) -> int:
    """Run an importer (it checks the submission as `submit validate` does before writing anything)."""
    from .evaluate.submissions import SubmissionError

    try:
        folder = write()
    except SubmissionError as exc:
        print(exc.report())
        print("nothing was written: fix the problems above and run the import again")
        return 2
    print(f"wrote {folder / 'predictions.parquet'} and {folder / 'submission.yaml'} (checked against the reference "
          f"as `instdecay submit validate` does); next: `instdecay evaluate {folder}`")
    return 0


def _seed_map(args: argparse.Namespace):
    from .evaluate.submissions.importers import read_seed_map

    return read_seed_map(args.seed_map) if args.seed_map else None


def _import_lm_eval(args: argparse.Namespace) -> int:
    from .evaluate.submissions.lm_eval import import_lm_eval
    from .loaders import DEFAULT_REFERENCE

    return _wrote_submission(lambda: import_lm_eval(
        args.sources, args.out, args.reference or DEFAULT_REFERENCE, task=args.task, split=args.split,
        harness_task=args.harness_task, labels=args.labels, filter_name=args.filter, metric=args.metric,
        id_template=args.id_template, doc_fields=args.doc_fields.split(",") if args.doc_fields else None,
        realign=args.realign, pretrain_seed=args.pretrain_seed, finetune_seed=args.finetune_seed,
        seed_map=args.seed_map, metadata=_metadata_flags(args), revision=args.revision))


def _import_csv(args: argparse.Namespace) -> int:
    from .evaluate.submissions.importers import import_run_csvs
    from .loaders import DEFAULT_REFERENCE

    return _wrote_submission(lambda: import_run_csvs(
        args.files, args.out, args.reference or DEFAULT_REFERENCE, task=args.task, split=args.split,
        pretrain_seed=args.pretrain_seed, finetune_seed=args.finetune_seed, seed_map=_seed_map(args),
        metadata=_metadata_flags(args), revision=args.revision))


def _import_release(args: argparse.Namespace) -> int:
    from .evaluate.submissions.importers import import_release
    from .loaders import DEFAULT_REFERENCE

    return _wrote_submission(lambda: import_release(args.release, args.task, args.split, args.size, args.out,
                                                    args.reference or DEFAULT_REFERENCE, args.revision,
                                                    metadata=_metadata_flags(args)))


def _leaderboard_build(args: argparse.Namespace) -> int:
    from .evaluate.reports.leaderboard import REJECTED_LOG, Rejected, build_leaderboard
    from .loaders import DEFAULT_REFERENCE

    try:
        board = build_leaderboard(args.submissions, args.reference or DEFAULT_REFERENCE, args.out, n_boot=args.n_boot,
                                  seed=args.seed, revision=args.revision, task=args.task, split=args.split,
                                  glue_dir=args.glue_dir, keep_going=args.keep_going)
    except Rejected as exc:
        for problem in exc.board["rejected"]:
            print(f"rejected: {problem}")
        print(f"{exc}", file=sys.stderr)
        return 2
    for sec in board["sections"]:
        n_sub = sum(r["kind"] == "submission" for r in sec["rows"])
        print(f"{sec['task']} / {sec['split']}: {n_sub} submission(s), {len(sec['rows']) - n_sub} reference size(s)")
    for problem in board["rejected"]:
        print(f"rejected (left off the board, --keep-going): {problem}")
    if board["rejected"]:
        print(f"{len(board['rejected'])} rejected, listed in {Path(args.out) / REJECTED_LOG} (not published)")
    print(f"site: {Path(args.out) / 'index.html'}")
    return 0


def _add_metadata_arguments(p: argparse.ArgumentParser) -> None:
    meta = p.add_argument_group("metadata (written to / overriding submission.yaml)")
    described = {"model": "model name shown on reports", "task": "reference task (e.g. sst2)",
                 "split": "reference evaluation set (e.g. validation)", "pretrained": "what it was finetuned from",
                 "url": "link to the model or paper (https://...)", "contact": "who to ask",
                 "hub_model_id": "the model on the Hugging Face Hub (owner/name)",
                 "hub_revision": "its Hub revision (commit or tag)",
                 "training_data": "what the model was finetuned on, e.g. 'sst2 pool rows as in the reference card' "
                                  "(shown on the leaderboard)"}
    for name, text in described.items():
        if not any(a.dest == name for a in p._actions):
            meta.add_argument(f"--{name.replace('_', '-')}", dest=name, help=text)
    meta.add_argument("--params", type=int, help="parameter count")
    meta.add_argument("--seed-design", choices=("nested", "crossed"),
                      help="nested: every run's randomness from its pretraining and finetuning seed; crossed: "
                           "finetuning seed f shared by every pretrained model (the statistics assume crossed "
                           "unless told nested)")


def _add_seed_arguments(p: argparse.ArgumentParser) -> None:
    seeds = p.add_argument_group("seeds (default: from run names ending in -seed<k> or -pseed<p>-fseed<f>)")
    seeds.add_argument("--pretrain-seed", type=int, help="pretraining seed of a single run (default: 0)")
    seeds.add_argument("--finetune-seed", type=int, help="finetuning seed of a single run")
    seeds.add_argument("--seed-map", help="YAML/CSV mapping run (folder or file) names to pretrain_seed, finetune_seed")


def _add_reference_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", help="reference dataset folder or Hub id the submission is checked against "
                                       "(default: the shipped CPU-scale ladder)")
    p.add_argument("--revision", help="Hub revision of --reference")


def _add_submission_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="prediction file (.parquet, .csv, .jsonl) or a folder of them")
    _add_reference_arguments(p)
    _add_metadata_arguments(p)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout and shows each option's default (when it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default is not None and action.default is not False and action.default != argparse.SUPPRESS
        if shown and "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _command(parent, name: str, help: str, example: str, description: str | None = None) -> argparse.ArgumentParser:
    return parent.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                             epilog="example:\n  " + example.replace("\n", "\n  "), formatter_class=_Formatter)


def _group(parent, name: str, help: str, description: str, example: str) -> argparse.ArgumentParser:
    """A command with steps (``instdecay submit validate``): its help says what the group is for."""
    return parent.add_parser(name, help=help, description=textwrap.fill(description, 100), formatter_class=_Formatter,
                             epilog="example:\n  " + example.replace("\n", "\n  "))


WORKFLOW = """workflow:
  instdecay report                          the paper's analyses on the shipped reference (or --simulated)
  instdecay submit import-csv ... --out S   your model's per-run predictions -> a checked submission folder
  instdecay submit validate S               every problem with its file, row and field
  instdecay evaluate S --out R              noise-corrected comparison with every reference size
  instdecay leaderboard build --submissions DIR --out site/
  instdecay generate grid SPEC              train a ladder and write its predictions (extra [generate])
  instdecay release build SHARDS OUT        publish a ladder as a dataset (then release validate / push)

  instdecay COMMAND --help                  each command's options and an example"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instdecay", description=__doc__, formatter_class=_Formatter,
                                     epilog=WORKFLOW)
    parser.add_argument("--version", action="version", version=f"instdecay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    report = _command(sub, "report", "run the paper's analyses on a ladder and write a Markdown/JSON/PNG report",
                      "instdecay report --split validation --out my-report/\ninstdecay report --simulated")
    report.add_argument("--reference", help="dataset folder or Hub id (default: the shipped CPU-scale SST-2 ladder)")
    report.add_argument("--revision", help="Hub revision (tag or commit) of --reference")
    report.add_argument("--split", action="append", help="evaluation set(s) to analyse, repeatable (default: all)")
    report.add_argument("--simulated", action="store_true", help="analyse a simulated ladder with known truth instead")
    report.add_argument("--out", help="output folder (default: instdecay-report, or instdecay-report-simulated "
                                      "with --simulated)")
    report.add_argument("--instances", type=int, default=5000, help="simulated instances")
    report.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the LCBs")
    report.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (and of --simulated)")
    report.set_defaults(func=_report)

    submit = _group(sub, "submit", "check or import a submission of per-instance predictions",
                    "Turn your model's per-run predictions (CSV, parquet, JSONL, lm-evaluation-harness samples or an "
                    "instdecay release) into a submission folder checked against the reference: instance ids and "
                    "hashes, labels, seeds, metadata. Every importer runs validate's checks before it writes.",
                    "instdecay submit import-csv runs/*.csv --task sst2 --split validation --model my-bert --out my-sub/"
                    "\ninstdecay submit validate my-sub/")
    ssub = submit.add_subparsers(dest="submit_command", metavar="STEP", required=True)
    validate_sub = _command(ssub, "validate", "validate a submission against the reference (exit 2 on problems)",
                            "instdecay submit validate examples/minilm-sst2")
    _add_submission_arguments(validate_sub)
    validate_sub.set_defaults(func=_submit_validate)

    lm = _command(ssub, "import-lm-eval", "convert lm-evaluation-harness --log_samples output (one model folder per run)",
                  "instdecay submit import-lm-eval harness-out/ --task sst2 --split validation --out my-sub/\n"
                  "(harness-out/org__my-bert-seed0/samples_sst2_<date>.jsonl, .../org__my-bert-seed1/..., one folder "
                  "per run)",
                  "Convert lm-evaluation-harness samples into a submission folder (predictions.parquet + "
                  "submission.yaml), checking every document against the reference.")
    lm.add_argument("sources", nargs="+", help="samples files, harness output folders, or a Hub details dataset id")
    lm.add_argument("--out", required=True, help="folder for predictions.parquet and submission.yaml")
    lm.add_argument("--task", required=True, help="reference task (e.g. sst2)")
    lm.add_argument("--split", required=True, help="reference evaluation set (e.g. validation)")
    lm.add_argument("--harness-task", help="the harness's task name, when it differs from --task")
    lm.add_argument("--labels", help="map choice names to the reference's labels: choice=label,... or the label of "
                                     "each choice in the samples' order (default: choices named like the labels)")
    lm.add_argument("--filter", help="the harness filter to import (required when a file has several)")
    lm.add_argument("--metric", choices=["acc", "acc_norm"], default="acc",
                    help="acc: softmax of the choices' log-likelihoods; acc_norm: argmax of log-likelihood per "
                         "character, labels only")
    lm.add_argument("--id-template", help="reference instance id of a sample (default: <split>-{doc_id})")
    lm.add_argument("--doc-fields", help="text field(s) of the harness documents, comma-separated "
                                         "(default for GLUE tasks, e.g. sentence for sst2)")
    lm.add_argument("--realign", action="store_true",
                    help="match samples to reference instances by content when doc_id points elsewhere")
    _add_seed_arguments(lm)
    _add_metadata_arguments(lm)
    _add_reference_arguments(lm)
    lm.set_defaults(func=_import_lm_eval)
    csv = _command(ssub, "import-csv", "combine plain per-run CSVs (instance_id + pred or prob_<label>)",
                   "instdecay submit import-csv runs/bert-seed0.csv runs/bert-seed1.csv --task sst2 "
                   "--split validation --model my-bert --out my-sub/")
    csv.add_argument("files", nargs="+", help="one CSV per run, named <run>-seed<k>.csv or <run>-pseed<p>-fseed<f>.csv")
    csv.add_argument("--out", required=True, help="folder for predictions.parquet and submission.yaml")
    csv.add_argument("--task", required=True, help="reference task (e.g. sst2)")
    csv.add_argument("--split", required=True, help="reference evaluation set (e.g. validation)")
    _add_seed_arguments(csv)
    _add_metadata_arguments(csv)
    _add_reference_arguments(csv)
    csv.set_defaults(func=_import_csv)

    fr = _command(ssub, "from-release", "turn one size of an instdecay release (e.g. your own generated runs) into "
                                        "a submission",
                  "instdecay submit from-release my-release/ --task sst2 --split validation --size my-bert "
                  "--out my-sub/")
    fr.add_argument("release", help="release folder or Hub id")
    fr.add_argument("--task", required=True, help="task of the release (e.g. sst2)")
    fr.add_argument("--split", required=True, help="evaluation set of the release (e.g. validation)")
    fr.add_argument("--size", required=True, help="the size (model) to submit")
    fr.add_argument("--out", required=True, help="folder for predictions.parquet and submission.yaml")
    _add_reference_arguments(fr)
    _add_metadata_arguments(fr)
    fr.set_defaults(func=_import_release)

    ev = _command(sub, "evaluate", "compare a submission with every reference size (noise-corrected)",
                  "instdecay evaluate examples/minilm-sst2 --out minilm-report/")
    _add_submission_arguments(ev)
    ev.add_argument("--out", default="instdecay-evaluation", help="output folder")
    ev.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the decay/improve LCBs")
    ev.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")
    ev.add_argument("--glue-dir", help="local GLUE folder to show instance text from (checked by instance_hash)")
    ev.set_defaults(func=_evaluate)

    board = _group(sub, "leaderboard", "rank submissions against the reference ladder (static site)",
                   "Evaluate submissions against the reference ladder and publish a static site: one ranked table per "
                   "task and evaluation set, a page per submission, and Hub model-index / eval-results exports.",
                   "instdecay leaderboard build --submissions examples/ --out site/")
    bsub = board.add_subparsers(dest="leaderboard_command", metavar="STEP", required=True)
    lb = _command(bsub, "build", "evaluate every submission (cached) and write leaderboard.json/.md and index.html",
                  "instdecay leaderboard build --submissions examples/ --out site/\n"
                  "(then open site/index.html; it works from file://)",
                  "Evaluate every submission against the reference (cached by content) and write a static site: "
                  "one ranked table per task and evaluation set, and a page per submission.")
    lb.add_argument("--submissions", required=True, action="append",
                    help="a folder of submission folders, one submission folder, or a Hub dataset id of one "
                         "submission; repeat for several")
    lb.add_argument("--reference", help="reference dataset folder or Hub id (default: the shipped CPU-scale ladder)")
    lb.add_argument("--revision", help="Hub revision of --reference")
    lb.add_argument("--task", help="only this task (default: every task of the reference)")
    lb.add_argument("--split", help="only this evaluation set (default: every evaluation set)")
    lb.add_argument("--glue-dir", help="local GLUE folder to show instance text on the detail pages")
    lb.add_argument("--out", default="site", help="output folder")
    lb.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the decay/improve LCBs")
    lb.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")
    lb.add_argument("--keep-going", action="store_true",
                    help="publish the board without rejected submissions (default: publish nothing and exit 2)")
    lb.set_defaults(func=_leaderboard_build)

    release = _group(sub, "release", "build, validate and push the prediction dataset",
                     "Publish a ladder's per-instance predictions: build the Hub layout (parquet, manifest, dataset "
                     "card with the paper's analyses) from generated shards, validate it, and push it to the Hub.",
                     "instdecay release build work/cpu-sst2/shards my-release/ --no-text\n"
                     "instdecay release validate my-release/\n"
                     "instdecay release push my-release/ my-org/my-predictions --tag v1.0 --dry-run")
    rsub = release.add_subparsers(dest="release_command", metavar="STEP", required=True)
    build = _command(rsub, "build", "collect per-run shards into the Hub layout (parquet + card + manifest)",
                     "instdecay release build work/cpu-sst2/shards my-release/ --no-text")
    build.add_argument("shards", help="shard folder (<task>/task.json, <task>/runs/<size>/*.parquet + *.json)")
    build.add_argument("out", help="release folder to write (replaced atomically)")
    build.add_argument("--no-text", action="store_true",
                       help="leave instance text out (third-party text); ids, labels and instance_hash stay")
    build.add_argument("--full-precision", action="store_true",
                       help="keep float32 probabilities (default: float16 precision, about 4x smaller)")
    build.add_argument("--no-analysis", action="store_true", help="do not add the paper's analyses to the card")
    build.add_argument("--card", help="JSON file of card fields (pretty_name, description, license, tags, repo_id); "
                                      "default: <shards>/release.json if present")
    build.set_defaults(func=_release_build)
    validate = _command(rsub, "validate", "check a release folder: hashes, grid, schema, every derived column, "
                                          "duplicates", "instdecay release validate my-release/")
    validate.add_argument("folder", help="release folder (or its manifest.json)")
    validate.set_defaults(func=_release_validate)
    push = _command(rsub, "push", "upload a validated release folder to the Hugging Face Hub",
                    "instdecay release push my-release/ my-org/my-predictions --tag v1.0 --dry-run")
    push.add_argument("folder", help="release folder")
    push.add_argument("repo_id", nargs="?", default="instdecay/predictions",
                      help="dataset repo on the Hub (owner/name; default: %(default)s)")
    push.add_argument("--revision", help="branch to commit to (default: the repo's default branch)")
    push.add_argument("--private", action="store_true", help="create the repo as private (when it does not exist)")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument("--tag", help="tag the release (e.g. v1.0) so users can pin revision=")
    push.add_argument("--dry-run", action="store_true", help="print what would be uploaded, upload nothing")
    push.set_defaults(func=_release_push)

    generate = _group(sub, "generate", "produce per-run prediction shards",
                      "Train a ladder (model sizes x pretraining seeds x finetuning seeds) from an experiment spec and "
                      "write every run's per-instance predictions, resumably; or import an existing prediction "
                      "release. Needs the [generate] extra (torch, transformers).",
                      "instdecay generate grid generate/specs/cpu-sst2.yaml --executor process --workers 2")
    gsub = generate.add_subparsers(dest="generate_command", metavar="STEP", required=True)
    imp = _command(gsub, "import-2021", "import a task folder of the Zhong et al. (2021) prediction release",
                   "instdecay generate import-2021 model_data_for_release/sst2 shards/")
    imp.add_argument("source", help="task folder (data.json + results/, or fold*/ subfolders)")
    imp.add_argument("shards", help="shard folder to write into")
    imp.add_argument("--task", help="task name (default: the folder name, e.g. sst2)")
    imp.set_defaults(func=_import_2021)
    hold = _command(gsub, "holdout", "split a phrase-structured training file (SST-2) into a pool and a held-out set "
                                     "with no text of one inside the other",
                    "instdecay generate holdout ../shared/data/glue/sst2/train.tsv --exclude "
                    "../shared/data/glue/sst2/dev.tsv --out generate/specs/sst2-holdout.json")
    hold.add_argument("train", help="training file (TSV, unquoted)")
    hold.add_argument("--out", required=True, help="split file to write (JSON; specs name it in rows_from)")
    hold.add_argument("--column", default="sentence", help="text column")
    hold.add_argument("--exclude", action="append", help="TSV of another evaluation set whose texts the pool must "
                                                         "neither contain nor be contained in; repeatable")
    hold.add_argument("--fraction", type=float, default=0.1, help="share of the sentences held out")
    hold.add_argument("--seed", type=int, default=0, help="seed of the choice of held-out sentences")
    hold.set_defaults(func=_generate_holdout)
    pre = _command(gsub, "pretrain", "pretrain one size/seed of a spec from scratch (masked LM)",
                   "instdecay generate pretrain generate/specs/cpu-sst2.yaml --size L2-H384 --seed 0")
    pre.add_argument("spec", help="experiment spec (YAML)")
    pre.add_argument("--size", required=True, help="a size name of the spec (e.g. L2-H384)")
    pre.add_argument("--seed", type=int, required=True, help="its pretraining seed")
    pre.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    pre.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                     help="auto: bf16 autocast where the hardware computes bf16 natively")
    pre.set_defaults(func=_generate_pretrain)
    run = _command(gsub, "run", "finetune one run of a spec and write its shard (pretrain it first)",
                   "instdecay generate run generate/specs/cpu-sst2.yaml --run L2-H384__p0__f1")
    run.add_argument("spec", help="experiment spec (YAML)")
    run.add_argument("--run", required=True, help="<size>__p<pretrain seed>__f<finetune seed>")
    run.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    run.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                     help="auto: bf16 autocast where the hardware computes bf16 natively")
    run.set_defaults(func=_generate_run)
    grid = _command(gsub, "grid", "run every unfinished job of a spec: pretraining, then finetuning (resumable)",
                    "instdecay generate grid generate/specs/cpu-sst2.yaml --executor process --workers 2")
    grid.add_argument("spec", help="experiment spec (YAML); shards go to its `output` folder")
    grid.add_argument("--executor", choices=["local", "process", "ray"], default="local", help="where jobs run")
    grid.add_argument("--workers", type=int, default=1, help="processes (process) or local Ray CPUs (ray)")
    grid.add_argument("--device", help="torch device for every job (default: cuda if available, else cpu)")
    grid.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local one)")
    grid.add_argument("--num-cpus", type=float, default=1, help="Ray CPUs per job")
    grid.add_argument("--num-gpus", type=float, default=0, help="Ray GPUs per job")
    grid.add_argument("--runs-per-process", type=int,
                      help="finetuning runs of one size trained together, stacked in one loop (default: the "
                           "finetuning runs of one pretrained model)")
    grid.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                      help="auto: bf16 autocast where the CPU (AVX512-BF16, AMX) or GPU computes bf16 natively")
    grid.set_defaults(func=_generate_grid)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # user mistakes and unreadable files: one clear line, no traceback
        if isinstance(exc, BrokenPipeError):  # output piped into `head`: stop quietly
            sys.stderr.close()
            return 0
        print(f"instdecay {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
