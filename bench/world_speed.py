"""Pairs rendered and captioned per second by the embedded world, on one core, at several image sizes.

Target: at least 5,000 pairs per second at 32 px. Run: python bench/world_speed.py
"""

import time, torch
from clipkit.data.world import WorldConfig, make_pairs


def rate(size, n=5000, repeats=3):
    cfg = WorldConfig(size=size)
    make_pairs(cfg, 500, seed=0)  # warm up
    best = min(_time(cfg, n, s) for s in range(repeats))
    return n / best


def _time(cfg, n, seed):
    t0 = time.perf_counter()
    make_pairs(cfg, n, seed=seed)
    return time.perf_counter() - t0


if __name__ == '__main__':
    torch.set_num_threads(1)
    print(f"{'size':>6} {'pairs/s (1 thread)':>20}")
    for size in (32, 64):
        print(f'{size:>6} {rate(size):>20,.0f}')
    print('target: >= 5,000 pairs/s at 32 px')
