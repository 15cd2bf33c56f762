"""Peak memory of reading shards: 10 shards against 100, each read whole in a fresh process.

clipkit's shard reader keeps one member of one shard in memory at a time, so the peak resident memory of a
pass over the data should not grow with the number of shards. Printed: peak RSS of each pass and their ratio.

    .venv/bin/python bench/stream_memory.py [--shard-size 64]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from clipkit.data.world import WorldConfig, export_wds, make_pairs

# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak at fork time
READ = """
import sys
import torch
from clipkit.data.stream import ShardPairs, shard_batches
from clipkit.models import create
_, tok, pre = create('tiny-rn')
source = ShardPairs(sys.argv[1:], shuffle_buffer=0)
n = sum(len(b.keys) for b in shard_batches(source, pre, tok, 64, once=True))
peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1]
print(n, peak)
"""


def peak(shards: list) -> tuple:
    "(samples read, peak resident memory in MiB) of one pass over `shards` in a fresh process."
    out = subprocess.run([sys.executable, '-c', READ, *map(str, shards)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    n, kib = out.stdout.split()[-2:]
    return int(n), int(kib) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shard-size', type=int, default=64, help='pairs per shard')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        pairs = make_pairs(WorldConfig(size=96), 100 * args.shard_size, seed=0)
        shards = export_wds(pairs, Path(d), shard_size=args.shard_size, fmt='jpg')
        size = sum(p.stat().st_size for p in shards) / 2**20
        few, many = peak(shards[:10]), peak(shards)
    print(
        f'BENCHMARK peak memory of one pass (96 px JPEGs, {args.shard_size} pairs per shard, '
        f'{size:.0f} MiB in all):'
    )
    print(f'  10 shards ({few[0]} pairs): {few[1]:.0f} MiB   100 shards ({many[0]} pairs): {many[1]:.0f} MiB')
    print(f'  ratio {many[1] / few[1]:.2f}x')


if __name__ == '__main__':
    main()
