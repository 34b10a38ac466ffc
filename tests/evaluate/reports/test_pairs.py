import numpy as np

from instdecay.evaluate import decay_bounds, simulate
from instdecay.evaluate.reports.pairs import pair_bounds


def test_pair_bounds_do_not_depend_on_the_number_of_threads():
    sim = simulate(500, sizes=("s", "m", "l"), n_pretrain=4, n_finetune=2, seed=0)
    pairs = [(sim.scores["s"], sim.scores["m"]), (sim.scores["s"], sim.scores["l"]), (sim.scores["m"], sim.scores["l"])]
    one = pair_bounds(pairs, n_boot=100, seed=3, workers=1)
    two = pair_bounds(pairs, n_boot=100, seed=3, workers=2)
    for (a, ra), (b, rb) in zip(one, two):
        assert a.to_dict() == b.to_dict() and ra.to_dict() == rb.to_dict()
    assert len({r.decay_lcb for r, _ in one}) > 1 or len({r.improve_lcb for r, _ in one}) > 1


def test_rigorous_variant_uses_one_run_per_seed_and_is_absent_for_probabilities():
    sim = simulate(500, sizes=("s", "l"), n_pretrain=4, n_finetune=2, seed=0)
    (bounds, rigorous), = pair_bounds([(sim.scores["s"], sim.scores["l"])], n_boot=50, seed=0, workers=1)
    assert not bounds.rigorous and rigorous.rigorous and "1 run per unit" in rigorous.design
    probabilities = [(np.clip(sim.scores["s"] * 0.8 + 0.1, 0, 1), np.clip(sim.scores["l"] * 0.7 + 0.2, 0, 1))]
    (_, none), = pair_bounds(probabilities, n_boot=20, seed=0, workers=1)
    assert none is None
    assert decay_bounds(*probabilities[0], n_boot=0).rigorous is False
