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


def test_a_chance_test_counts_the_items_scored():
    "Found: compositionality tested 800 scored items as 20 trials; the outcomes are now counted where given."
    from clipkit.verdicts import chance_verdict

    outcomes = np.r_[np.ones(350), np.zeros(450)]  # 200 items x 4 models
    row = chance_verdict(outcomes, chance=0.5)
    assert row['trials'] == 800, 'the trials are the items'
    assert row['verdict'] == 'below chance', '0.4375 over 800 items is below chance'
    assert chance_verdict(outcomes[::40], chance=0.5)['verdict'] == 'at chance', 'over 20 it could not tell'
    with pytest.raises(ValueError, match='not both'):
        chance_verdict(outcomes, 800, 0.5)


def test_configurations_are_not_seeds():
    rows = pd.DataFrame({'seed': [0, 0, 1, 1, 2, 2], 'steps': [150, 300] * 3, 'top1': [0.5, 0.7] * 3})
    with pytest.raises(ValueError, match=r"average=\['steps'\]"):
        seed_values(rows, 'top1', seed=['steps', 'seed'])
    with pytest.raises(ValueError, match=r'more than one row for seed\(s\) \[0, 1, 2\]'):
        seed_values(rows, 'top1')
    averaged = seed_values(rows, 'top1', average=['steps'])
    assert averaged.to_dict() == {0: 0.6, 1: 0.6, 2: 0.6}, 'one value per seed'
    keyed_by_configuration = {(150, 0): 0.5, (300, 0): 0.7, (150, 1): 0.5}
    with pytest.raises(ValueError, match='a configuration and a seed'):
        verdict(keyed_by_configuration, 0.0)


def test_holm_matches_a_hand_computation():
    from clipkit.verdicts import holm

    p = [0.01, 0.04, 0.03, 0.005]
    rows = [{'claim': str(k), 'verdict': 'yes', 'p_value': v, 'p_no': 1 - v} for k, v in enumerate(p)]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4(0.005) = 0.02, 3(0.01) = 0.03, 2(0.03) = 0.06, 1(0.04) -> 0.06
    adjusted = holm(rows)
    np.testing.assert_allclose([r['p_adjusted'] for r in adjusted], [0.03, 0.06, 0.06, 0.02], atol=1e-12)
    assert [r['adjusted'] for r in adjusted] == ['yes', 'not shown', 'not shown', 'yes']
    no = holm([{'claim': 'x', 'verdict': 'no', 'p_value': 0.999, 'p_no': 0.001}] * 2)
    assert [r['adjusted'] for r in no] == ['no', 'no'], 'a claim the data contradict keeps its direction'


def test_the_bootstrap_refuses_too_few_seeds():
    from clipkit.verdicts import BOOTSTRAP_MIN_SEEDS

    few = {k: 0.8 + 0.01 * k for k in range(BOOTSTRAP_MIN_SEEDS - 1)}
    with pytest.raises(ValueError, match=f'needs {BOOTSTRAP_MIN_SEEDS} seeds or more'):
        verdict(few, 0.5, method='bootstrap')
    enough = {k: 0.8 + 0.01 * (k % 5) for k in range(BOOTSTRAP_MIN_SEEDS)}
    assert verdict(enough, 0.5, method='bootstrap')['verdict'] == 'yes'


@pytest.mark.parametrize('n', [3, 5])
def test_the_detectable_effect_is_detected_four_times_in_five(n):
    "Simulated at the printed detectable effect (20,000 designs), the t rule says yes 80% +- 1.5 points."
    from scipy import stats
    from clipkit.verdicts import detectable_effect

    effect = detectable_effect(0.05, n)
    d = np.random.default_rng(n).normal(effect, 0.05, size=(20000, n))
    low = d.mean(1) - stats.t.ppf(0.95, n - 1) * d.std(1, ddof=1) / np.sqrt(n)
    assert abs(np.mean(low > 0) - 0.8) < 0.015


def test_a_claim_on_models_too_weak_is_not_judged():
    strong = verdict({0: 0.8, 1: 0.82, 2: 0.81}, {0: 0.7, 1: 0.71, 2: 0.72})
    weak = verdict(
        {0: 0.8, 1: 0.82, 2: 0.81}, {0: 0.7, 1: 0.71, 2: 0.72}, competence=('shape', {0: 0.26, 1: 0.9}, 0.6)
    )
    assert strong['verdict'] == 'yes' and weak['verdict'] == 'not judged'
    assert weak['why'] == 'model too weak (shape 0.26, needs 0.60)'


def test_a_study_judges_its_claims_together(tmp_path, capsys):
    from clipkit.verdicts import chance_verdict, study_verdicts

    clear = verdict({0: 0.81, 1: 0.80, 2: 0.82}, {0: 0.70, 1: 0.71, 2: 0.72}, claim='clear')
    marginal = verdict({0: 0.815, 1: 0.83, 2: 0.845}, {0: 0.80, 1: 0.80, 2: 0.80}, claim='marginal')
    null = verdict({0: 0.79, 1: 0.80, 2: 0.82}, {0: 0.80, 1: 0.80, 2: 0.80}, claim='null')
    above = chance_verdict(40, 60, 1 / 6, claim='above chance')
    checks = [clear, marginal, null, above]
    rows = study_verdicts(checks, tmp_path)
    raw = sorted(min(r['p_value'], r.get('p_no', 1.0)) for r in checks)
    hand = [min(1.0, max((4 - i) * p for i, p in enumerate(raw[: k + 1]))) for k in range(4)]
    assert sorted(r['p_adjusted'] for r in rows) == pytest.approx(hand)
    assert marginal['verdict'] == 'yes' and rows[1]['adjusted'] == 'not shown', 'Holm takes this yes back'
    table = pd.read_csv(tmp_path / 'verdicts.csv')
    assert table.adjusted.tolist() == ['yes', 'not shown', 'not shown', 'above chance']
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and 'Holm-adjusted p' in printed[1] and 'raw: yes' in printed[1]
