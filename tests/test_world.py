"""The embedded world at larger sizes than the notebook demo: knob statistics and a round trip through the
real loaders."""

import numpy as np, torch
from clipkit.data.world import WorldConfig, make_pairs, export_wds, world_tasks
from clipkit.data.sources import read_wds_pairs


def test_zipf_and_noise_rates():
    p = make_pairs(WorldConfig(zipf=1.0, caption_noise=0.5, duplicate_rate=0.0), 4000, seed=3)
    shapes = np.array([s for ss in p.meta.shapes for s in ss])
    counts = [np.mean(shapes == s) for s in WorldConfig().shapes]
    assert counts[0] > counts[2] > counts[-1], 'Zipf skew: the head shape is drawn most, the tail least'
    assert abs((p.meta.noise == 'attribute').mean() - 0.25) < 0.03, 'half the noise is a wrong attribute'
    assert abs((p.meta.noise == 'unrelated').mean() - 0.25) < 0.03, 'half the noise is an unrelated caption'


def test_style_mix_and_unseen_style():
    cfg = WorldConfig(styles={'plain': 1, 'dark': 1})
    p = make_pairs(cfg, 1000, seed=0)
    assert set(p.meta['style']) == {'plain', 'dark'}, 'only the styles in the mix are drawn'
    assert 'outline' in cfg.unseen_styles, 'a style left out of the mix is unseen'
    assert abs((p.meta['style'] == 'dark').mean() - 0.5) < 0.06, 'equal weights draw each style half the time'


def test_attribute_noise_changes_a_colour_word():
    clean = make_pairs(WorldConfig(), 300, seed=5)
    noisy = make_pairs(WorldConfig(caption_noise=1.0), 300, seed=5)
    assert torch.equal(clean.images, noisy.images), 'caption noise leaves the images alone'
    changed = sum(a != b for a, b in zip(clean.captions, noisy.captions))
    assert changed > 250, 'with noise 1.0 nearly every caption changes'


def test_wds_roundtrip_jpg(tmp_path):
    p = make_pairs(WorldConfig(), 50, seed=1)
    q = read_wds_pairs(export_wds(p, tmp_path, shard_size=20))
    assert len(q) == 50, 'every pair comes back from the shards'
    assert q.captions == p.captions, 'in the same order, with the same captions'
    diff = np.abs(np.asarray(q.images[7], dtype=float) - p.images[7].permute(1, 2, 0).numpy()).mean()
    assert diff < 12, 'jpg is lossy, but the pixels stay close'


def test_tasks_are_balanced_and_seeded():
    t = world_tasks(WorldConfig(), n_per_class=5, names=['count', 'relation'])
    assert np.bincount(t['count'].labels.numpy()).tolist() == [20, 20, 20], 'the count task is balanced'
    assert np.bincount(t['relation'].labels.numpy()).tolist() == [20] * 4, 'so is the relation task'
    t2 = world_tasks(WorldConfig(), n_per_class=5, names=['count'])
    assert torch.equal(t['count'].images, t2['count'].images), 'the same seed gives the same images'
