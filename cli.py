"""instdecay: instance-level evaluation of pretrained language-model ladders.

Each subcommand is a thin wrapper: it parses arguments and calls the library.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__


def _report(args: argparse.Namespace) -> int:
    from .evaluate.ladder import analyze_ladder
    from .evaluate.report import format_report, write_report
    from .evaluate.simulate import simulate

    sim = simulate(n_instances=args.instances, n_pretrain=10, n_finetune=5, seed=args.seed)
    description = (
        f"SIMULATED ladder (instdecay.evaluate.simulate, seed {args.seed}): 5 sizes x 10 pretraining x 5 "
        f"finetuning seeds on {args.instances} instances, with known ground truth. True decaying fraction "
        f"{sim.sizes[0]} -> {sim.sizes[-1]}: {sim.true_decay(sim.sizes[0], sim.sizes[-1]):.4f}; "
        f"true improving fraction: {sim.true_improve(sim.sizes[0], sim.sizes[-1]):.4f}."
    )
    report = analyze_ladder(sim.scores, n_boot=args.n_boot, seed=args.seed, description=description)
    print(format_report(report))
    written = write_report(report, args.out)
    print(f"wrote {len(written)} files to {Path(args.out).resolve()}: {', '.join(p.name for p in written)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instdecay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"instdecay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    report = sub.add_parser("report", help="run the paper's analyses on a ladder and write a Markdown/JSON/PNG report")
    report.add_argument("--out", default="instdecay-report", help="output folder (default: %(default)s)")
    report.add_argument("--instances", type=int, default=5000, help="simulated instances (default: %(default)s)")
    report.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for LCBs (default: %(default)s)")
    report.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    report.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except ValueError as exc:  # user mistakes: one clear line, no traceback
        print(f"instdecay {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
