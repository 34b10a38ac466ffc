"""Instance-level evaluation: the statistics, the submission harness and the reports built on them.

``instdecay.evaluate.stats``        estimators on arrays (numpy/scipy only); re-exported here
``instdecay.evaluate.submissions``  reading, importing and checking submitted predictions against a reference
``instdecay.evaluate.reports``      comparisons with the reference ladder, reports, plots and the leaderboard
"""

from .stats import (BHDecayBound, DecayBounds, Decomposition, McNemarResult, Momentum, PairedComparison,
                    SeedDisagreement, SimulatedLadder, adjust_pvalues, bh_decay_bound, decay_bounds, decompose,
                    ensemble_by_pretrain, mcnemar_test, momentum, paired_bootstrap, seed_disagreement, simulate)

__all__ = [
    "BHDecayBound",
    "DecayBounds",
    "Decomposition",
    "McNemarResult",
    "Momentum",
    "PairedComparison",
    "SeedDisagreement",
    "SimulatedLadder",
    "adjust_pvalues",
    "bh_decay_bound",
    "decay_bounds",
    "decompose",
    "ensemble_by_pretrain",
    "mcnemar_test",
    "momentum",
    "paired_bootstrap",
    "seed_disagreement",
    "simulate",
]
