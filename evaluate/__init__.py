"""Instance-level evaluation: the statistics, the submission harness and the reports built on them.

``instdecay.evaluate.stats``        estimators on arrays (numpy/scipy only); re-exported here
``instdecay.evaluate.submissions``  reading, importing and checking submitted predictions against a reference
``instdecay.evaluate.reports``      comparisons with the reference ladder, reports, plots and the leaderboard
"""

from . import stats
from .stats import *  # noqa: F401,F403 (the estimators, re-exported)

__all__ = stats.__all__
