"""Submitted predictions: reading them as hostile input, checking them against a reference, assembling runs
(:mod:`.files` -> :mod:`.checks` -> :mod:`.assemble`, driven by :func:`load_submission`), and importers that turn
predictions people already have (per-run CSVs, lm-evaluation-harness samples, a release) into a submission.

May import: :mod:`instdecay.loaders`, :mod:`instdecay.safe_read`, :mod:`instdecay.atomic`; never the reports.
"""

from .assemble import Submission
from .importers import import_release, import_run_csvs
from .lm_eval import import_lm_eval
from .load import content_hash, load_submission, resolve_submission
from .problems import Problem, SubmissionError

__all__ = ["Problem", "Submission", "SubmissionError", "content_hash", "import_lm_eval", "import_release",
           "import_run_csvs", "load_submission", "resolve_submission"]
