"""Zero-shot evaluation throughput from shards: clipkit against CLIP_benchmark, both decoding JPEGs.

A world classification task rendered at 224 px is written in CLIP_benchmark's WebDataset layout (JPEG quality
95). Both tools embed every image with the same model, batch size and worker count, in one run; printed:
images/s of each, their ratio, and whether the two accuracies agree.

The two differ in one way on a CPU: while its workers decode, clipkit runs the model on the cores they leave
free (`clipkit.config.threads_beside_workers`; 1 thread for 2 workers on 2 cores), where CLIP_benchmark keeps
torch's default (one thread per core), whose spinning OpenMP threads take cores from the decoding workers.

    .venv/bin/pip install -e ".[bench]"   # CLIP_benchmark, the peer
    .venv/bin/python bench/stream_eval.py [--per-class 40] [--batch-size 64] [--workers 2] [--repeats 4]
"""

import argparse
import tempfile
import time
import torch
from clipkit.config import threads_beside_workers
from clipkit.data.stream import clip_benchmark_task
from clipkit.data.world import WorldConfig, export_clip_benchmark, world_tasks
from clipkit.eval import zero_shot_eval
from clipkit.models import create, register

BENCH_MODEL = 'bench-vit-224'
BENCH_CFG = dict(
    embed_dim=128,
    vision_cfg=dict(image_size=224, patch_size=32, width=128, layers=4, head_width=32, mlp_ratio=4),
    text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=2, layers=2),
)


def peer_accuracy(output, target, topk=(1,)):
    "CLIP_benchmark's `accuracy`, with `.item()` where its `float(array)` fails under numpy 2."
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum().item() / len(target) for k in topk]


def run_clip_benchmark(model, tok, pre, root, args) -> tuple:
    "(images/s, top-1) of CLIP_benchmark's own wds loader and zero-shot evaluation."
    from clip_benchmark.datasets.builder import build_wds_dataset
    from clip_benchmark.metrics import zeroshot_classification

    zeroshot_classification.accuracy = (
        peer_accuracy  # only the final count; the timed loop is CLIP_benchmark's
    )

    dataset = build_wds_dataset('bench', transform=pre, split='test', data_dir=str(root))
    loader = torch.utils.data.DataLoader(
        dataset.batched(args.batch_size), batch_size=None, shuffle=False, num_workers=args.workers
    )
    t0 = time.perf_counter()
    metrics = zeroshot_classification.evaluate(
        model, loader, tok, dataset.classes, dataset.templates, device='cpu', amp=False
    )
    return args.n / (time.perf_counter() - t0), metrics['acc1']


def run_clipkit(model, tok, pre, root, args) -> tuple:
    "(images/s, top-1) of clipkit's streamed zero-shot evaluation."
    t0 = time.perf_counter()
    metrics = zero_shot_eval(
        model, tok, clip_benchmark_task(root), pre, workers=args.workers, batch_size=args.batch_size
    )
    return args.n / (time.perf_counter() - t0), metrics['top1']


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--per-class', type=int, default=40, help='test images per class (48 classes)')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=4, help='alternating runs of each tool')
    args = ap.parse_args()
    register(BENCH_MODEL, BENCH_CFG)
    torch.manual_seed(0)
    model, tok, pre = create(BENCH_MODEL)
    world = WorldConfig(size=224, holdout=())
    task = world_tasks(world, n_per_class=args.per_class, seed=1, names=['shape_color'])['shape_color']
    args.n = len(task)
    with tempfile.TemporaryDirectory() as d:
        root = export_clip_benchmark(task, d, shard_size=256, fmt='jpg')
        run_clipkit(model, tok, pre, root, args)  # warm-up: page cache, lazy imports
        runs = {'clipkit': [], 'clip_benchmark': []}
        tools = {'clipkit': run_clipkit, 'clip_benchmark': run_clip_benchmark}
        for i in range(args.repeats):  # alternating who goes first: drifts of a noisy machine hit both alike
            for name in sorted(tools, reverse=bool(i % 2)):
                runs[name].append(tools[name](model, tok, pre, root, args))
    ours, our_acc = max(r[0] for r in runs['clipkit']), runs['clipkit'][0][1]
    theirs, their_acc = max(r[0] for r in runs['clip_benchmark']), runs['clip_benchmark'][0][1]
    print(f'BENCHMARK zero-shot evaluation, {args.n} JPEGs at 224 px, {BENCH_MODEL}, {args.workers} workers,')
    default_threads = torch.get_num_threads()
    with threads_beside_workers(args.workers, 'cpu') as threads:
        print(f'  model threads: clipkit {threads}, CLIP_benchmark {default_threads} (torch default)')
    print(f'  best of {args.repeats} runs each, alternating which runs first:')
    print(
        f'  clipkit {ours:.1f} images/s   CLIP_benchmark {theirs:.1f} images/s   ratio {ours / theirs:.2f}x'
    )
    print(f'  top-1: clipkit {our_acc:.4f}, CLIP_benchmark {their_acc:.4f}')


if __name__ == '__main__':
    main()
