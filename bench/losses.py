"""Peak memory and time of clip_loss and siglip_loss, plain and chunked, against open_clip's losses.

Each measurement (forward + backward on random unit features, D=512, float32) runs in a fresh subprocess so
that its peak resident memory (ru_maxrss) is its own; the figure reported is the peak above the process's
resident memory once the features exist and the libraries are warmed up on a small batch. Time is the median
(min-max) of `--repeats` runs in that process. Goal: the chunked losses at 16k within 1.05x open_clip's time
at 0.15x its peak memory or less.
Run: python bench/losses.py [--sizes 1024 4096 16384] [--chunk 1024] [--only clip]"""

import argparse, json, resource, statistics, subprocess, sys, time


def measure(impl, B, D, chunk, repeats):
    import torch, torch.nn.functional as F
    import open_clip.loss as ocl
    from clipkit.losses import clip_loss, siglip_loss

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(B, D, generator=g), dim=-1)
    y = F.normalize(torch.randn(B, D, generator=g), dim=-1)
    s, b = torch.tensor(10.0), torch.tensor(-10.0)
    fns = {
        'open_clip ClipLoss': lambda i, t: ocl.ClipLoss()(i, t, s),
        'clipkit clip_loss': lambda i, t: clip_loss(i, t, s),
        'clipkit clip_loss chunked': lambda i, t: clip_loss(i, t, s, chunk=chunk),
        'open_clip SigLipLoss': lambda i, t: ocl.SigLipLoss()(i, t, s, b),
        'clipkit siglip_loss': lambda i, t: siglip_loss(i, t, s, b),
        'clipkit siglip_loss chunked': lambda i, t: siglip_loss(i, t, s, b, chunk=chunk),
    }
    fn = fns[impl]
    for _ in range(
        2
    ):  # warm up the libraries (thread pools, matmul kernels) on a small batch, outside the measurement
        i, t = x[:256].clone().requires_grad_(), y[:256].clone().requires_grad_()
        fn(i, t).backward()
    base = _rss_now()
    times = []
    for _ in range(repeats):
        i, t = x.clone().requires_grad_(), y.clone().requires_grad_()
        t0 = time.perf_counter()
        fn(i, t).backward()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = dict(seconds=statistics.median(times), fastest=min(times), slowest=max(times))
    return dict(impl=impl, B=B, **seconds, peak_mib=max(0, peak - base) / 2**20)


def _rss_now():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', type=int, nargs='+', default=[1024, 4096, 16384])
    ap.add_argument('--chunk', type=int, default=1024)
    ap.add_argument('--dim', type=int, default=512)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--only', default='', help="measure only the losses whose name holds this, e.g. 'clip'")
    ap.add_argument('--one', nargs=2)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one[0], int(a.one[1]), a.dim, a.chunk, a.repeats)))
        sys.exit()
    impls = [
        'open_clip ClipLoss',
        'clipkit clip_loss',
        'clipkit clip_loss chunked',
        'open_clip SigLipLoss',
        'clipkit siglip_loss',
        'clipkit siglip_loss chunked',
    ]
    impls = [impl for impl in impls if a.only.lower() in impl.lower()]
    rows = []
    for B in a.sizes:
        for impl in impls:
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    '--one',
                    impl,
                    str(B),
                    '--chunk',
                    str(a.chunk),
                    '--dim',
                    str(a.dim),
                    '--repeats',
                    str(a.repeats),
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode:
                print(r.stderr[-2000:])
                continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            x = rows[-1]
            spread = f"({x['fastest']:.2f}-{x['slowest']:.2f})"
            print(
                f"{x['B']:>6} {x['impl']:<30} {x['seconds']:>8.2f} s {spread:<13} {x['peak_mib']:>9.0f} MiB",
                flush=True,
            )
    print()
    for B in a.sizes:
        get = {r['impl']: r for r in rows if r['B'] == B}
        for fam, ref in (('clip_loss', 'open_clip ClipLoss'), ('siglip_loss', 'open_clip SigLipLoss')):
            c = get.get(f'clipkit {fam} chunked')
            o = get.get(ref)
            if c and o:
                print(
                    f"B={B:>6} chunked {fam}: memory {c['peak_mib'] / max(o['peak_mib'], 1e-9):.2f}x "
                    f"open_clip's, time {c['seconds'] / o['seconds']:.2f}x"
                )
