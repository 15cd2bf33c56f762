"""The verdict pairs two arms by seed itself: a seed that one arm lacks is an error naming it."""

import numpy as np
import pandas as pd
import pytest
from clipkit.verdicts import pair_by_seed, seed_values, verdict


def _rows():
    "Tidy results of two methods over three seeds, in no particular order."
    return pd.DataFrame(
        {
            'method': ['CoOp', 'CLIP', 'CoOp', 'CLIP', 'CoOp', 'CLIP'],
            'seed': [2, 0, 0, 1, 1, 2],
            'top1': [0.83, 0.70, 0.81, 0.71, 0.82, 0.72],
        }
    )


def test_verdict_pairs_by_seed_whatever_the_order():
    rows = _rows()
    coop, clip = seed_values(rows, 'top1', method='CoOp'), seed_values(rows, 'top1', method='CLIP')
    shuffled = clip.sample(frac=1, random_state=0)
    assert verdict(coop, shuffled) == verdict(coop, clip)
    np.testing.assert_allclose(verdict(coop, clip)['effect'], 0.11)


def test_verdict_refuses_unpaired_seeds():
    rows = _rows()
    coop = seed_values(rows, 'top1', method='CoOp')
    clip = seed_values(rows[~((rows.method == 'CLIP') & (rows.seed == 1))], 'top1', method='CLIP')
    with pytest.raises(ValueError, match=r'unpaired seeds: \[1\] only in a, \[\] only in b'):
        verdict(coop, clip)


def test_positional_results_are_refused():
    with pytest.raises(TypeError, match='keyed by seed'):
        verdict([0.8, 0.81, 0.82], [0.7, 0.71, 0.72])


def test_a_seed_twice_in_one_arm_is_refused():
    rows = pd.concat([_rows(), _rows().head(1)])
    with pytest.raises(ValueError, match=r'more than one row for seed\(s\) \[2\]'):
        seed_values(rows, 'top1', method='CoOp')
    with pytest.raises(ValueError, match="has seed 0 more than once"):
        pair_by_seed(pd.Series([0.1, 0.2], index=[0, 0]), pd.Series([0.1, 0.2], index=[0, 1]))
