"""`clipkit bench` against CLIP_benchmark: features per second on the same shards; what one extraction saves.

Part 1, like for like. A world classification task (48 classes, 224 px JPEGs, quality 95) is written in
CLIP_benchmark's WebDataset layout. Each tool runs its zero-shot evaluation of that test split with the same
model, batch size and decoding workers: for clipkit, `run_suite(['wds:NAME'], tasks=('zeroshot',))` (`clipkit
bench`) and `zero_shot_eval` (`clipkit eval`); for the peer, `zeroshot_classification.evaluate` over
`build_wds_dataset` (what `clip_benchmark eval` runs).
clipkit runs the model on the cores its workers leave free (`threads_beside_workers`: 1 thread beside 2
workers on 2 cores); the peer keeps torch's default, one thread per core. The peer runs both ways: at its
default, and given clipkit's thread policy. The second is the like-for-like ratio, the headline. The runs
alternate, the order rotating, and each tool's median images/s is printed with its min and max. Before timing,
the two tools' per-image predictions and logits are compared, with a checkpoint trained on the world (cached
after the first run), in shard order (no workers).

Part 2, one extraction. The same kind of task is written in a CoOp benchmark's official layout (DTD's folders
and `split_zhou_DescribableTextures.json`: train, val, test), and `run_suite` serves zero-shot, linear probe
and 16-shot Tip-Adapter (CoOp's seeds 1, 2, 3) either from one extraction, or task by task, each from a cold
feature cache, as a tool without a shared extraction would. Printed: the medians of both, and the share of
time the one extraction saves.

    .venv/bin/pip install -e ".[bench]"   # CLIP_benchmark, the peer
    .venv/bin/python bench/suite_speed.py [--test-per-class 20] [--batch-size 64] [--workers 2] [--repeats 5]
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
import torch
from clipkit.config import threads_beside_workers
from clipkit.data.world import WorldConfig, export_clip_benchmark, to_pil, world_tasks
from clipkit.data.zoo import BENCHMARKS, load_benchmark
from clipkit.suite import benchmark_features, run_suite
from clipkit.train import TrainConfig, world_model
from clipkit.data.stream import clip_benchmark_task
from clipkit.eval import zero_shot_eval

BENCH_CFG = dict(
    embed_dim=128,
    vision_cfg=dict(image_size=224, patch_size=32, width=128, layers=4, head_width=32, mlp_ratio=4),
    text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=2, layers=2),
)
WORLD = WorldConfig(size=224, holdout=())
TASK = 'shape_color'  # 48 classes: six shapes by eight colours


def peer_accuracy(output, target, topk=(1,)):
    "CLIP_benchmark's `accuracy`, with `.item()` where its `float(array)` fails under numpy 2."
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum().item() / len(target) for k in topk]


def trained_checkpoint(steps: int):
    "A 224 px ViT trained on the world (300 steps reach about 0.18 top-1 on the 48 classes, chance 0.02)."
    cfg = TrainConfig(steps=steps, batch_size=64, seed=0, progress=False)
    model, tokenizer, preprocess, _ = world_model(BENCH_CFG, WORLD, cfg, n_pairs=4000)
    return model.eval(), tokenizer, preprocess


def peer_loader(root: Path, preprocess, batch_size: int, workers: int):
    "CLIP_benchmark's own WebDataset reader and loader, as `clip_benchmark eval` builds them."
    from clip_benchmark.datasets.builder import build_wds_dataset

    dataset = build_wds_dataset('bench', transform=preprocess, split='test', data_dir=str(root))
    loader = torch.utils.data.DataLoader(
        dataset.batched(batch_size), batch_size=None, shuffle=False, num_workers=workers
    )
    return dataset, loader


def run_peer(model, tokenizer, preprocess, root, args, threads=None) -> float:
    "Seconds of CLIP_benchmark's zero-shot evaluation; `threads` sets torch's threads for its model."
    from clip_benchmark.metrics import zeroshot_classification

    zeroshot_classification.accuracy = (
        peer_accuracy  # only the final count; the timed loop is CLIP_benchmark's
    )
    dataset, loader = peer_loader(root, preprocess, args.batch_size, args.workers)
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        start = time.perf_counter()
        zeroshot_classification.evaluate(
            model, loader, tokenizer, dataset.classes, dataset.templates, device='cpu', amp=False
        )
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(default)


def run_clipkit(model, tokenizer, preprocess, data_root, args) -> float:
    "Seconds of `run_suite`'s zero-shot cell on the shards, written to a fresh results folder."
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_suite(
            model,
            tokenizer,
            preprocess,
            ['wds:bench'],
            data_root,
            out,
            tasks=('zeroshot',),
            progress=False,
            workers=args.workers,
            batch_size=args.batch_size,
        )
        return time.perf_counter() - start


def run_eval(model, tokenizer, preprocess, data_root, args) -> float:
    "Seconds of `zero_shot_eval` (what `clipkit eval --task wds:PATH` runs) on the shards."
    start = time.perf_counter()
    task = clip_benchmark_task(data_root / 'bench')
    zero_shot_eval(model, tokenizer, task, preprocess, workers=args.workers, batch_size=args.batch_size)
    return time.perf_counter() - start


def agreement(model, tokenizer, preprocess, data_root, args) -> dict:
    "Per-image agreement of the two tools' zero-shot logits on the test shards, read in order."
    from clip_benchmark.metrics import zeroshot_classification

    dataset, loader = peer_loader(data_root / 'bench', preprocess, args.batch_size, workers=0)
    classifier = zeroshot_classification.zero_shot_classifier(
        model, tokenizer, dataset.classes, dataset.templates, 'cpu', amp=False
    )
    peer_logits, peer_labels = zeroshot_classification.run_classification(
        model, classifier, loader, 'cpu', amp=False
    )
    test = benchmark_features(model, tokenizer, preprocess, 'wds:bench', data_root, parts=('test',))['test']
    ours = 100.0 * test.image @ test.text.T  # CLIP_benchmark's logits carry its fixed 100 scale
    return dict(
        same_labels=torch.equal(test.labels, peer_labels),
        same_predictions=(ours.argmax(1) == peer_logits.argmax(1)).float().mean().item(),
        max_logit_difference=(ours - peer_logits).abs().max().item(),
        top1=(ours.argmax(1) == test.labels).float().mean().item(),
    )


def write_coop_layout(root: Path, per_class: tuple) -> None:
    "The world's 48 classes as DTD lies in CoOp's layout: images/<class>/<file>.jpg and its split file."
    benchmark = BENCHMARKS['dtd']
    folder = root / benchmark.folder
    split = {}
    for part, seed, n in zip(('train', 'val', 'test'), (11, 12, 13), per_class):
        task = world_tasks(WORLD, n_per_class=n, seed=seed, names=[TASK])[TASK]
        rows = []
        for i, (image, label) in enumerate(zip(task.images, task.labels.tolist())):
            classname = task.classnames[label]
            relative = f"{classname.replace(' ', '_')}/{part}_{i:05d}.jpg"
            (folder / benchmark.image_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            to_pil(image).save(folder / benchmark.image_dir / relative, quality=95)
            rows.append([relative, label, classname])
        split[part] = rows
    (folder / benchmark.split_file).write_text(json.dumps(split))


def run_tasks(model, tokenizer, preprocess, data_root, tasks_per_run, args) -> float:
    "Seconds of `run_suite` on DTD's layout, one call per tuple of tasks, each from a cold feature cache."
    total = 0.0
    for tasks in tasks_per_run:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            os.environ['CLIPKIT_CACHE_DIR'] = cache
            start = time.perf_counter()
            run_suite(
                model,
                tokenizer,
                preprocess,
                ['dtd'],
                data_root,
                out,
                tasks=tasks,
                progress=False,
                workers=args.workers,
                batch_size=args.batch_size,
            )
            total += time.perf_counter() - start
    return total


def median_line(label: str, values: list, unit: str) -> str:
    middle = statistics.median(values)
    return f'  {label:<44} {middle:7.1f} {unit} (min {min(values):.1f}, max {max(values):.1f})'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--test-per-class', type=int, default=20, help='test images per class (48 classes)')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=5, help='alternating runs of each tool')
    ap.add_argument('--steps', type=int, default=300, help="training steps of the world checkpoint (cached)")
    args = ap.parse_args()
    model, tokenizer, preprocess = trained_checkpoint(args.steps)
    with threads_beside_workers(args.workers, 'cpu') as threads:
        policy = threads
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        data_root = Path(folder)
        task = world_tasks(WORLD, n_per_class=args.test_per_class, seed=1, names=[TASK])[TASK]
        export_clip_benchmark(task, data_root / 'bench', shard_size=256, fmt='jpg')
        n_test = len(task)
        agreed = agreement(model, tokenizer, preprocess, data_root, args)
        tools = {
            'clipkit bench (run_suite)': lambda: run_clipkit(model, tokenizer, preprocess, data_root, args),
            'clipkit eval (zero_shot_eval)': lambda: run_eval(model, tokenizer, preprocess, data_root, args),
            f'CLIP_benchmark, {default_threads} threads (its default)': lambda: run_peer(
                model, tokenizer, preprocess, data_root / 'bench', args
            ),
            f'CLIP_benchmark, {policy} thread (clipkit policy)': lambda: run_peer(
                model, tokenizer, preprocess, data_root / 'bench', args, threads=policy
            ),
        }
        names = list(tools)
        tools[names[0]]()  # warm-up: page cache, lazy imports, worker start-up code
        rates = {name: [] for name in names}
        for i in range(args.repeats):  # the order rotates: a noisy machine's drifts hit every tool alike
            for name in names[i % len(names) :] + names[: i % len(names)]:
                rates[name].append(n_test / tools[name]())
        write_coop_layout(data_root, per_class=(16, 4, args.test_per_class))
        sizes = {part: len(t) for part, t in load_benchmark('dtd', data_root).items()}
        together, apart = [], []
        all_three = ('zeroshot', 'linear_probe', 'fewshot')
        for i in range(max(3, args.repeats // 2)):
            runs = [
                (together, [all_three]),
                (apart, [(task,) for task in all_three]),
            ]
            for times, tasks_per_run in runs[i % 2 :] + runs[: i % 2]:
                times.append(run_tasks(model, tokenizer, preprocess, data_root, tasks_per_run, args))
        os.environ.pop('CLIPKIT_CACHE_DIR', None)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    print(f'BENCHMARK `clipkit bench` against CLIP_benchmark: a 224 px ViT ({millions:.1f} M parameters)')
    print(
        f'1. zero-shot on {n_test} JPEGs (224 px) in CLIP_benchmark shards, batch {args.batch_size}, '
        f'{args.workers} decoding workers, {args.repeats} alternating runs each:'
    )
    for name in names:
        print(median_line(name, rates[name], 'images/s'))
    for ours in names[:2]:  # the ratio of each round's runs, which ran back to back
        for peer in names[2:]:
            ratios = [a / b for a, b in zip(rates[ours], rates[peer])]
            print(
                f'  {ours.split(" (")[0]} / {peer}: {statistics.median(ratios):.2f}x '
                f'(min {min(ratios):.2f}, max {max(ratios):.2f})'
            )
    print(
        f"  per image, in shard order: labels equal {agreed['same_labels']}, same prediction on "
        f"{agreed['same_predictions']:.4f} of images, logits differ by at most "
        f"{agreed['max_logit_difference']:.2e} "
        f"(top-1 {agreed['top1']:.3f}, chance {1 / 48:.3f})"
    )
    print(
        f"2. zero-shot, linear probe and 16-shot Tip-Adapter (seeds 1, 2, 3) on DTD's layout "
        f"({sizes['train']} train, {sizes['val']} val, {sizes['test']} test images), cold caches, "
        f"{len(together)} runs each:"
    )
    print(median_line('one extraction serving the three tasks', together, 's'))
    print(median_line('task by task, an extraction each', apart, 's'))
    saved = 1 - statistics.median(together) / statistics.median(apart)
    print(f'  time saved by the one extraction: {100 * saved:.0f}%')


if __name__ == '__main__':
    main()
