"""Training throughput from JPEG shards: clipkit's trainer against open_clip_train, like for like.

Both read the same shards (the world rendered at 224 px, JPEG quality 95) and train the same model config
with the same batch size, worker count, learning rate and number of steps, on this machine, in one run. Both
get the same work: open_clip's training transform (a bicubic random resized crop,
`clipkit.models.train_transform`), shards drawn with replacement (open_clip_train's `--dataset-resampled`,
clipkit's `resampled=True`), a sample shuffle buffer that starts yielding at 1,000 samples (open_clip_train's
initial fill; its buffer then grows to 5,000), and torch's default threads. Printed: samples/s of each (steps
after the first two, so that worker start-up is left out) as the median (min, max) of rounds whose order
rotates, the ratios of each round's runs, for clipkit at its defaults (fused AdamW) and with
`fused_adamw=False` (the update open_clip_train runs), and the share of a step clipkit waits for data.

    .venv/bin/python bench/stream_train.py [--samples 1536] [--batch-size 64] [--workers 2] [--steps 30]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import statistics
import numpy as np
import torch
from clipkit.data.stream import ShardPairs
from clipkit.data.world import WorldConfig, export_wds, make_pairs
from clipkit.models import create, register, train_transform
from clipkit.train import TrainConfig, train

# a small ViT at 224 px: the data path (JPEG decoding, resizing) weighs as much as the model on 2 cores
BENCH_MODEL = 'bench-vit-224'
BENCH_CFG = dict(
    embed_dim=128,
    vision_cfg=dict(image_size=224, patch_size=32, width=128, layers=4, head_width=32, mlp_ratio=4),
    text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=2, layers=2),
)

OPEN_CLIP_TRAIN = """
import sys, open_clip
from open_clip_train.main import main
open_clip.factory._MODEL_CONFIGS[{name!r}] = {cfg!r}
main(sys.argv[1:])
"""


def shards(out: Path, n: int, shard_size: int) -> list:
    "The world's pairs rendered at 224 px, written as JPEG shards."
    pairs = make_pairs(WorldConfig(size=224), n, seed=0)
    return export_wds(pairs, out, shard_size=shard_size, fmt='jpg')


def run_clipkit(paths, args, fused_adamw=True) -> tuple:
    "(samples/s after the first two steps, mean data-wait share) of clipkit's trainer on the shards."
    register(BENCH_MODEL, BENCH_CFG)
    torch.manual_seed(0)
    model, tok, _ = create(BENCH_MODEL)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=1e-3,
        warmup=1,
        workers=args.workers,
        progress=False,
        sparse_embedding=False,  # open_clip_train has no sparse token table
        threads=args.threads,
        fused_adamw=fused_adamw,
    )
    data = ShardPairs(paths, n_samples=args.samples, resampled=True, shuffle_buffer=1000)
    t0 = time.perf_counter()
    history = train(model, tok, data, cfg, preprocess=train_transform(model))
    wall = time.perf_counter() - t0
    later = history.iloc[2:]
    rate = args.batch_size * len(later) / (later.seconds.iloc[-1] - history.seconds.iloc[1])
    print(f"clipkit{' (fused AdamW)' if fused_adamw else ''}: {len(history)} steps in {wall:.1f} s")
    return rate, float(later.data_wait.mean())


def run_open_clip_train(paths, args, logs: Path) -> float:
    "samples/s of `python -m open_clip_train.main` (the bench config registered) after the first two steps."
    pattern = str(paths[0].parent / f'shard-{{000000..{len(paths) - 1:06d}}}.tar')
    argv = [
        '--train-data', pattern, '--train-num-samples', str(args.steps * args.batch_size),
        '--dataset-type', 'webdataset', '--batch-size', str(args.batch_size), '--workers', str(args.workers),
        '--model', BENCH_MODEL, '--epochs', '1', '--lr', '1e-3', '--warmup', '1', '--precision', 'fp32',
        '--logs', str(logs), '--name', 'bench', '--save-frequency', '0', '--log-every-n-steps', '1',
        '--report-to', '', '--seed', '0', '--dataset-resampled',
    ]  # fmt: skip
    script = OPEN_CLIP_TRAIN.format(name=BENCH_MODEL, cfg=BENCH_CFG)
    env_threads = {'OMP_NUM_THREADS': str(args.threads)} if args.threads else {}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, '-c', script, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env_threads},
    )
    wall = time.perf_counter() - t0
    text = out.stdout + out.stderr
    if out.returncode:
        raise SystemExit(f'open_clip_train failed:\n{text[-3000:]}')
    batch_times = [float(t) for t in re.findall(r'Batch \(t\): ([0-9.]+)', text)]
    print(f'open_clip_train: {len(batch_times)} logged steps in {wall:.1f} s (process included)')
    later = batch_times[2:]
    return args.batch_size / float(np.mean(later))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--samples', type=int, default=1536, help='samples written to shards')
    ap.add_argument('--shard-size', type=int, default=256, help='samples per shard')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=3, help='rotating rounds of the three runs')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        paths = shards(Path(d) / 'shards', args.samples, args.shard_size)
        print(
            f'{len(paths)} JPEG shards of {args.samples} world pairs at 224 px '
            f'in {time.perf_counter() - t0:.0f} s'
        )
        names = ['clipkit (defaults: fused AdamW)', 'clipkit, fused_adamw=False', 'open_clip_train']
        rates = {name: [] for name in names}
        waits = []
        for i in range(args.repeats):  # the order rotates: drifts of a noisy machine hit every tool alike
            for name in names[i % len(names) :] + names[: i % len(names)]:
                if name == 'open_clip_train':
                    rates[name].append(run_open_clip_train(paths, args, Path(d) / f'logs-{i}'))
                else:
                    rate, wait = run_clipkit(paths, args, fused_adamw='defaults' in name)
                    rates[name].append(rate)
                    waits.append(wait)
    print(
        f'BENCHMARK training samples/s, {BENCH_MODEL}, batch {args.batch_size}, {args.workers} workers, '
        f"open_clip's training transform for both, {args.repeats} rotating rounds:"
    )
    for name in names:
        r = rates[name]
        print(f'  {name:<34} {statistics.median(r):6.1f} samples/s (min {min(r):.1f}, max {max(r):.1f})')
    for name in names[:2]:
        ratios = [ours / theirs for ours, theirs in zip(rates[name], rates['open_clip_train'])]
        print(
            f'  {name} / open_clip_train: {statistics.median(ratios):.2f}x '
            f'(min {min(ratios):.2f}, max {max(ratios):.2f})'
        )
    print(f'  clipkit waits for data {100 * statistics.median(waits):.0f}% of a step (median of its runs)')


if __name__ == '__main__':
    main()
