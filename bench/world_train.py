"""Seconds per training step of the quickstart's model on the embedded world, and what buys speed.

The quickstart trains `tiny-rn` on the world (32 px images, batch 256) for 600 steps. This script times its
steps on this machine, in one run, under each change that could make a step cheaper without changing what is
trained (or changing it in a stated way), and prints each against the default:

- `default`: TrainConfig() as the quickstart uses it;
- `fused_adamw`: torch's fused AdamW kernel (the same update to float rounding);
- `dense_table`: the token table updated by AdamW with the rest (no SparseAdam step);
- `channels_last`: the image tower's activations in channels-last memory order;
- `compile`: `torch.compile` of the model, with the dense token table (inductor cannot read SparseAdam's
  sparse gradients; the first steps, which compile, are left out);
- `channels_last + fused`: the two together.

Each change runs once per round and the rounds alternate, so a noisy spell on a shared machine hits them all;
the best round of each counts.

It also counts the floating-point operations of one step (torch's FlopCounterMode) and times a large matmul
on the same threads, so each line shows the step's share of this machine's matmul throughput (the roofline a
CPU step could reach if it were one big matmul).

    .venv/bin/python bench/world_train.py [--steps 30] [--repeats 3] [--threads 2]
"""

import argparse
import time
from dataclasses import replace
import torch
from torch.utils.flop_counter import FlopCounterMode
from clipkit.data.world import WorldConfig, make_pairs
from clipkit.models import create
from clipkit.train import TrainConfig, train


def matmul_rate(n=1024, repeats=5) -> float:
    "Floating-point operations per second of an n x n float32 matmul on this process's threads."
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def step_flops(model, tokenizer, pairs, batch_size) -> float:
    "Operations of one forward and backward pass of a batch (the optimizer's few are left out)."
    from clipkit.features import image_batch

    tokens = tokenizer(list(pairs.captions[:batch_size]))
    images = image_batch(model, pairs.images[:batch_size], None)
    with FlopCounterMode(display=False) as counter:
        image_features, text_features, scale = model(images, tokens)[:3]
        (image_features @ text_features.T * scale).logsumexp(1).mean().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def seconds_per_step(name, cfg, steps) -> tuple:
    "(median seconds of a step after the first five (warm-up, compilation), its operations), fresh tiny-rn."
    pairs = make_pairs(WorldConfig(), cfg.batch_size * 4, seed=0)
    torch.manual_seed(0)
    model, tok, _ = create('tiny-rn', loss='clip')
    flops = step_flops(model, tok, pairs, cfg.batch_size)
    if name.startswith('channels_last'):
        model = model.to(memory_format=torch.channels_last)
    if name == 'compile':
        model.forward = torch.compile(model.forward)
    history = train(model, tok, pairs, replace(cfg, steps=steps + 5, warmup=1))
    per_step = history.seconds.diff().iloc[5:]
    return float(per_step.median()), flops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=3, help='rounds over every change; the best round counts')
    ap.add_argument('--threads', type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    base = TrainConfig(batch_size=256, progress=False, threads=a.threads or None, seed=0)
    runs = {
        'default': base,
        'fused_adamw': replace(base, fused_adamw=True),
        'dense_table': replace(base, sparse_embedding=False),
        'channels_last': base,
        'compile': replace(base, sparse_embedding=False),
        'channels_last + fused': replace(base, fused_adamw=True),
    }
    best, flops, peak = {}, {}, 0.0
    for _ in range(a.repeats):  # rounds alternate the changes, so that a noisy spell hits all of them
        peak = max(peak, matmul_rate())
        for name, cfg in runs.items():
            try:
                seconds, flops[name] = seconds_per_step(name, cfg, a.steps)
            except Exception as e:  # a change this machine's torch cannot run is reported, not hidden
                best[name] = f'failed: {type(e).__name__}: {str(e).splitlines()[0][:70]}'
                continue
            best[name] = min(best.get(name, seconds), seconds)
    print(f'{torch.get_num_threads()} threads; a 1024 x 1024 float32 matmul runs at {peak / 1e9:.1f} GFLOP/s')
    print(f"{'change':>22} {'s/step':>8} {'vs default':>11} {'600 steps':>10} {'GFLOP':>6} {'roofline':>9}")
    for name, seconds in best.items():
        if isinstance(seconds, str):
            print(f'{name:>22} {seconds}')
            continue
        row = f"{name:>22} {seconds:>8.4f} {best['default'] / seconds:>10.2f}x {600 * seconds:>9.0f}s"
        print(f'{row} {flops[name] / 1e9:>6.2f} {flops[name] / seconds / peak:>8.1%}')


if __name__ == '__main__':
    main()
