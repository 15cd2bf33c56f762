"""The studies on a given model: a checkpoint saved by clipkit (a world model trained for a few steps)
stands in for a pretrained model, and the benchmark zoo's fixtures, in their official layouts, for the
benchmarks."""

from pathlib import Path
import pandas as pd
import pytest
from clipkit.config import UsageError
from clipkit.data.world import WorldConfig
from clipkit.data.zoo import load_benchmark, write_fixture
from clipkit.models import save
from clipkit.studies import run_study, study_inputs
from clipkit.train import TrainConfig, world_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = (
    *('winoground', 'sugarcrepe', 'vg_relation', 'vg_attribution', 'mmvp_vlm'),
    *('flickr30k', 'oxford_pets', 'imagenet', 'imagenetv2', 'imagenet_a'),
)


@pytest.fixture(scope='module')
def given(tmp_path_factory):
    "(a checkpoint folder, the data root holding every fixture benchmark)."
    root = tmp_path_factory.mktemp('given')
    cfg = TrainConfig(steps=5, batch_size=32, progress=False)
    model, _, _, _ = world_model('tiny-rn', WorldConfig(), cfg, n_pairs=256)
    checkpoint = save(model, root / 'checkpoint')
    for name in FIXTURES:
        write_fixture(name, root / 'data')
    return checkpoint, root / 'data'


def run(study, params, out):
    return run_study(ROOT / 'nbs' / 'studies' / f'{study}.ipynb', params, out, progress=False)


def test_mismatches_are_refused_naming_the_parameter(given):
    checkpoint, data = given
    refusals = [
        (dict(model=str(checkpoint)), 'parameter model', 'is measured on the benchmarks you name'),
        (dict(model='tiny-rn', benchmarks=['winoground']), 'parameter benchmarks', 'need a given model'),
        (dict(model=str(checkpoint), benchmarks=['winoground']), 'parameter data_root', 'is not given'),
        (
            dict(model=str(checkpoint), benchmarks=['winoground'], data_root=str(data / 'none')),
            'data_root',
            '',
        ),
        (
            dict(model=str(checkpoint), benchmarks=['winogrand'], data_root=str(data)),
            'benchmarks',
            'winoground',
        ),
    ]
    for params, parameter, detail in refusals:
        with pytest.raises(UsageError, match=parameter) as refused:
            study_inputs('compositionality', kinds=('compositionality',), **params)
        assert detail in str(refused.value), str(refused.value)
    with pytest.raises(UsageError, match=r"parameter data_root: 'mscoco' is not in .* \(its layout: coco/"):
        study_inputs('modality_gap', str(checkpoint), ['mscoco'], data, kinds=('retrieval',))
    for wrong in ('./no/such/checkpoint', 'ViT-B-32:opena'):  # refused by unknown_model, named here
        with pytest.raises(UsageError, match="study 'compositionality': parameter model: "):
            study_inputs('compositionality', wrong, ['winoground'], data, kinds=('compositionality',))
    with pytest.raises(UsageError, match="'flickr30k' is a retrieval benchmark"):
        study_inputs('compositionality', str(checkpoint), ['flickr30k'], data, kinds=('compositionality',))
    assert study_inputs('compositionality', 'tiny-rn') is None, 'a world model: the study trains its own'


@pytest.mark.slow
def test_a_given_model_without_benchmarks_stops_the_study(given, tmp_path):
    with pytest.raises(Exception, match='is measured on the benchmarks you name'):
        run('modality_gap', dict(model=str(given[0])), tmp_path)
    assert not (tmp_path / 'verdicts.csv').exists(), 'nothing ran past the set-up cell'


@pytest.mark.slow
def test_compositionality_on_a_given_model(given, tmp_path):
    checkpoint, data = given
    benchmarks = ['winoground', 'sugarcrepe', 'vg_relation', 'vg_attribution', 'mmvp_vlm']
    run('compositionality', dict(model=str(checkpoint), benchmarks=benchmarks, data_root=str(data)), tmp_path)
    scores = pd.read_csv(tmp_path / 'benchmarks.csv')
    headline = scores[scores.part == 'all'].groupby('benchmark').score.apply(set).to_dict()
    assert headline == {
        'winoground': {'text', 'image', 'group'},
        'mmvp_vlm': {'image'},
        'sugarcrepe': {'accuracy'},
        'vg_relation': {'accuracy', 'macro accuracy'},
        'vg_attribution': {'accuracy', 'macro accuracy'},
    }, 'the scores each paper reports'
    types = set(scores[(scores.benchmark == 'sugarcrepe') & (scores.part != 'all')].part)
    assert types == {
        'add_att',
        'add_obj',
        'replace_att',
        'replace_obj',
        'replace_rel',
        'swap_att',
        'swap_obj',
    }
    assert set(scores[scores.benchmark == 'winoground'].part) >= {'all', 'Object'}, 'by collapsed tag'
    counted = scores[(scores.part == 'all') & scores.successes.notna()]
    assert (counted.n == 21).all(), 'the trials are the items scored (7 per fixture split x 3)'
    verdicts = pd.read_csv(tmp_path / 'verdicts.csv')
    assert len(verdicts) == len(counted) == 7, 'one chance test per headline score'
    assert verdicts.adjusted.isin(['above chance', 'below chance', 'at chance']).all()
    assert not (tmp_path / 'compositionality.cells.jsonl').exists(), 'no world model was trained'


@pytest.mark.slow
def test_modality_gap_on_a_given_model(given, tmp_path):
    checkpoint, data = given
    params = dict(
        model=str(checkpoint), benchmarks=['flickr30k', 'oxford_pets'], data_root=str(data), n_splits=3
    )
    run('modality_gap', params, tmp_path)
    gaps = pd.read_csv(tmp_path / 'benchmark_gap.csv')
    assert gaps.groupby('benchmark').part.nunique().to_dict() == {'flickr30k': 3, 'oxford_pets': 3}
    assert {'gap', 'cone_image', 'cone_text', 'within_image_gap', 'matched_cosine'} <= set(gaps.columns)
    captions = len(load_benchmark('flickr30k', data)['test'].captions)
    assert gaps[gaps.benchmark == 'flickr30k'].pairs.sum() == captions, 'every caption, with its image'
    shifts = pd.read_csv(tmp_path / 'benchmark_shift.csv')
    readout = shifts.groupby('benchmark').zero_shot_top1.apply(lambda s: s.notna().all()).to_dict()
    assert readout == {'flickr30k': False, 'oxford_pets': True}, 'zero-shot top-1 where there are classes'
    verdicts = pd.read_csv(tmp_path / 'verdicts.csv')
    claims = verdicts.claim.str.split(':').str[0].value_counts().to_dict()
    assert claims == {'flickr30k': 3, 'oxford_pets': 4}, 'a classification set adds the zero-shot readout'
    assert (verdicts.seeds == 3).all(), 'the replicates are the disjoint parts of the test items'


@pytest.mark.slow
def test_few_shot_on_a_given_model(given, tmp_path):
    checkpoint, data = given
    params = dict(
        model=str(checkpoint),
        benchmarks=['oxford_pets', 'imagenet', 'imagenetv2', 'imagenet_a'],
        data_root=str(data),
        shots=[1, 2],
        protocol_shots=2,
        methods=['zero_shot', 'linear_probe', 'tip_adapter', 'coop'],
        given_hyperparameters={'coop': {'epochs': 1}},
    )
    run('few_shot', params, tmp_path)
    runs = pd.read_csv(tmp_path / 'given_runs.csv')
    every = runs[runs.protocol == 'all_classes']
    assert set(every.benchmark) == {'oxford_pets', 'imagenet'}, 'the variants have no training split'
    assert set(every.shots) == {1, 2} and set(every.seed) == {1, 2, 3}, "CoOp's seeds by default"
    assert len(every) == 2 * 2 * 3 * 4, 'benchmarks x shots x seeds x methods'
    table = pd.read_csv(tmp_path / 'table.csv')
    assert {'oxford_pets', 'imagenet', 'average'} <= set(table.columns)
    halves = runs[runs.protocol == 'base_to_novel']
    assert halves[halves.method == 'linear_probe'].novel.isna().all(), 'a linear head cannot name new classes'
    assert halves[halves.method == 'coop'].novel.notna().all(), 'a prompt learner can'
    shifted = pd.read_csv(tmp_path / 'domain_generalisation.csv', index_col='method')
    assert list(shifted.columns) == ['imagenetv2', 'imagenet_a', 'targets']
    verdicts = pd.read_csv(tmp_path / 'verdicts.csv')
    assert verdicts.claim.str.contains('one backbone').all(), 'the seeds redraw the shots of one model'
    assert (verdicts.seeds == 3).all()
