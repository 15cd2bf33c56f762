"""Retrieval recall: `retrieval_metrics` against a plain chunked torch loop, time and working memory.

The plain loop is what a researcher would write: queries a chunk at a time (the same chunk as clipkit's), the
scores of a chunk against every candidate, one `topk` of the largest k, and R@k read off its first k columns,
in both directions. Both run on the same embeddings (10,000 images, 5 captions each, D = 512, float32) in
alternating rounds; printed are the median seconds (min, max) of each and their ratio. The working memory of
each, the peak resident memory above what the embeddings take, is read in a fresh process per tool
(`/proc/self/status`' VmHWM after resetting it). The two must give the same recalls.

    .venv/bin/python bench/retrieval_speed.py [--images 10000] [--captions-per-image 5] [--rounds 3]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
import torch
import torch.nn.functional as F
from clipkit.eval import retrieval_metrics

KS = (1, 5, 10)
CHUNK = 1024


def embeddings(n_images: int, per_image: int, dim: int = 512):
    "Normalised image embeddings, and captions near their image (noise of five times its norm), a fixed draw."
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(n_images, dim, generator=generator), dim=-1)
    caption_image = torch.arange(n_images).repeat_interleave(per_image)
    noise = torch.randn(len(caption_image), dim, generator=generator) / dim**0.5
    text = F.normalize(image[caption_image] + 5.0 * noise, dim=-1)
    return image, text, caption_image


def plain_loop(image, text, caption_image, ks=KS, chunk=CHUNK) -> dict:
    "R@k both ways: one topk of the largest k per chunk of queries."
    top_k = max(ks)
    out = {}
    found = {k: [] for k in ks}
    for s in range(0, len(text), chunk):
        top = (text[s : s + chunk] @ image.T).topk(top_k, dim=1).indices
        hit = top == caption_image[s : s + chunk, None]
        for k in ks:
            found[k].append(hit[:, :k].any(1))
    out |= {f'text_to_image_R@{k}': torch.cat(found[k]).float().mean().item() for k in ks}
    found = {k: [] for k in ks}
    for s in range(0, len(image), chunk):
        top = (image[s : s + chunk] @ text.T).topk(top_k, dim=1).indices
        hit = caption_image[top] == torch.arange(s, min(s + chunk, len(image)))[:, None]
        for k in ks:
            found[k].append(hit[:, :k].any(1))
    return out | {f'image_to_text_R@{k}': torch.cat(found[k]).float().mean().item() for k in ks}


TOOLS = {
    'clipkit retrieval_metrics': lambda i, t, c: retrieval_metrics(i, t, c, ks=KS, chunk=CHUNK),
    'plain torch loop': plain_loop,
}


def status_kib(field: str) -> int:
    "A field of /proc/self/status, in KiB."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise KeyError(field)


def working_memory(tool: str, args) -> float:
    "MiB of peak resident memory above the embeddings' while `tool` runs, in this (fresh) process."
    image, text, caption_image = embeddings(args.images, args.captions_per_image)
    Path('/proc/self/clear_refs').write_text('5')  # resets VmHWM to the current resident size
    before = status_kib('VmRSS')
    TOOLS[tool](image, text, caption_image)
    return (status_kib('VmHWM') - before) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', type=int, default=10_000)
    ap.add_argument('--captions-per-image', type=int, default=5)
    ap.add_argument('--rounds', type=int, default=3, help='alternating rounds of the two tools')
    ap.add_argument('--memory-of', default=None, help=argparse.SUPPRESS)  # the child process's tool
    args = ap.parse_args()
    if args.memory_of:
        print(working_memory(args.memory_of, args))
        return
    image, text, caption_image = embeddings(args.images, args.captions_per_image)
    names = list(TOOLS)
    seconds = {name: [] for name in names}
    recalls = {}
    for i in range(args.rounds):
        for name in names[i % 2 :] + names[: i % 2]:
            start = time.perf_counter()
            recalls[name] = TOOLS[name](image, text, caption_image)
            seconds[name].append(time.perf_counter() - start)
    child = [sys.executable, __file__, '--images', str(args.images)]
    child += ['--captions-per-image', str(args.captions_per_image)]
    memory = {}
    for name in names:
        run = subprocess.run(child + ['--memory-of', name], capture_output=True, text=True, check=True)
        memory[name] = float(run.stdout.strip().splitlines()[-1])
    print(
        f'BENCHMARK retrieval recall, {args.images:,} images x {len(text):,} captions, D = {image.shape[1]}, '
        f'k = {KS}, chunk {CHUNK}, {torch.get_num_threads()} threads, {args.rounds} alternating rounds'
    )
    for name in names:
        s = seconds[name]
        print(
            f'  {name:<28} {statistics.median(s):6.2f} s (min {min(s):.2f}, max {max(s):.2f})   '
            f'working memory {memory[name]:7.1f} MiB'
        )
    ours, plain = names
    ratios = [a / b for a, b in zip(seconds[ours], seconds[plain])]
    print(
        f'  time ratio clipkit / plain loop: {statistics.median(ratios):.2f}x '
        f'(min {min(ratios):.2f}, max {max(ratios):.2f}); memory ratio {memory[ours] / memory[plain]:.2f}x'
    )
    largest = max(abs(recalls[ours][key] - recalls[plain][key]) for key in recalls[plain])
    print(
        f'  recalls equal: {largest == 0} (largest difference {largest:.1e}); '
        f"text-to-image R@1 {recalls[plain]['text_to_image_R@1']:.3f}"
    )


if __name__ == '__main__':
    main()
