"""Training throughput from WebDataset shards of JPEGs: clipkit's trainer against open_clip_train.

Both read the same shards (the world rendered at 224 px, JPEG quality 95), train the same model config with
the same batch size, worker count, learning rate and number of steps, on this machine, in one run. Printed:
samples/s of each (steps after the first two, so that worker start-up is left out; the best of alternating
runs), their ratio, the same for clipkit with `fused_adamw=True` (torch's fused AdamW kernel, the same update
to float rounding; off by default), and the share of a step clipkit spends waiting for data.

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
import numpy as np
import torch
from clipkit.data.stream import ShardPairs
from clipkit.data.world import WorldConfig, export_wds, make_pairs
from clipkit.models import create, register
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


def run_clipkit(paths, args, fused_adamw=False) -> tuple:
    "(samples/s after the first two steps, mean data-wait share) of clipkit's trainer on the shards."
    register(BENCH_MODEL, BENCH_CFG)
    torch.manual_seed(0)
    model, tok, pre = create(BENCH_MODEL)
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
    t0 = time.perf_counter()
    history = train(model, tok, ShardPairs(paths, n_samples=args.samples), cfg, preprocess=pre)
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
    ap.add_argument('--repeats', type=int, default=2, help='alternating runs of each tool')
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        paths = shards(Path(d) / 'shards', args.samples, args.shard_size)
        print(
            f'{len(paths)} JPEG shards of {args.samples} world pairs at 224 px '
            f'in {time.perf_counter() - t0:.0f} s'
        )
        ours, theirs, waits, fused = [], [], [], []
        tools = ('clipkit', 'open_clip_train', 'clipkit fused')
        for i in range(args.repeats):  # alternating who goes first: drifts of a noisy machine hit both alike
            for tool in tools[:: -1 if i % 2 else 1]:
                if tool == 'clipkit':
                    rate, wait = run_clipkit(paths, args)
                    ours.append(rate)
                    waits.append(wait)
                elif tool == 'clipkit fused':
                    fused.append(run_clipkit(paths, args, fused_adamw=True)[0])
                else:
                    theirs.append(run_open_clip_train(paths, args, Path(d) / f'logs-{i}'))
    ours, theirs, fused, wait = max(ours), max(theirs), max(fused), min(waits)
    print(
        f'BENCHMARK training samples/s, {BENCH_MODEL}, batch {args.batch_size}, {args.workers} workers, '
        f'best of {args.repeats} alternating runs each:'
    )
    print(f'  clipkit {ours:.1f}   open_clip_train {theirs:.1f}   ratio {ours / theirs:.2f}x')
    print(f'  clipkit with fused_adamw=True {fused:.1f}   ratio {fused / theirs:.2f}x')
    print(f'  clipkit waits for data {100 * wait:.0f}% of a step')


if __name__ == '__main__':
    main()
