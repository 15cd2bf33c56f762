"""Import time: clipkit's entry points against `import torch, open_clip`, each in a fresh interpreter.

Every CLI call and every test subprocess pays its import. Three imports are timed in alternating rounds, each
in a new Python process (wall time from start to exit): the peer, `import torch, open_clip`; `import clipkit`
followed by `clipkit.create`, which loads the public API (`clipkit.api`); and `import clipkit.cli`, what the
`clipkit` command loads before it parses its arguments. Printed: median seconds (min, max), the ratios, and
the modules the API loads beyond the peer's that take the longest (from `python -X importtime`).

    .venv/bin/python bench/import_time.py [--rounds 7]
"""

import argparse
import statistics
import subprocess
import sys
import time

IMPORTS = {
    'import torch, open_clip': 'import torch, open_clip',
    'clipkit.create (the API)': 'import clipkit; clipkit.create',
    'import clipkit.cli': 'import clipkit.cli',
}


def seconds(statement: str) -> float:
    "Wall seconds of a fresh interpreter that runs `statement` and exits."
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', statement], check=True)
    return time.perf_counter() - start


def self_times(statement: str) -> dict:
    "Module -> its own import time in seconds, as `python -X importtime` reports it."
    run = subprocess.run(
        [sys.executable, '-X', 'importtime', '-c', statement], capture_output=True, text=True, check=True
    )
    times = {}
    for line in run.stderr.splitlines():
        fields = line.removeprefix('import time:').split('|')
        if len(fields) == 3 and fields[0].strip().isdigit():
            times[fields[2].strip()] = int(fields[0]) / 1e6
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rounds', type=int, default=7, help='alternating rounds of the three imports')
    args = ap.parse_args()
    names = list(IMPORTS)
    measured = {name: [] for name in names}
    for i in range(args.rounds):  # the order rotates, so that a drift of the machine hits each alike
        for name in names[i % len(names) :] + names[: i % len(names)]:
            measured[name].append(seconds(IMPORTS[name]))
    print(f'BENCHMARK import time, a fresh interpreter each, {args.rounds} alternating rounds')
    peer = names[0]
    for name in names:
        s = measured[name]
        line = f'  {name:<26} {statistics.median(s):5.2f} s (min {min(s):.2f}, max {max(s):.2f})'
        if name != peer:
            ratios = [ours / theirs for ours, theirs in zip(s, measured[peer])]
            line += (
                f'   {statistics.median(ratios):.2f}x the peer (min {min(ratios):.2f}, max {max(ratios):.2f})'
            )
        print(line)
    ours, theirs = self_times(IMPORTS[names[1]]), self_times(IMPORTS[peer])
    extra = {module: t for module, t in ours.items() if module not in theirs}
    top = sorted(extra.items(), key=lambda item: -item[1])[:8]
    print(
        f'  the API loads {len(extra)} modules beyond the peer\'s, '
        f'{sum(extra.values()):.2f} s of their own time;'
    )
    print('  the longest: ' + ', '.join(f'{module} {1000 * t:.0f} ms' for module, t in top))


if __name__ == '__main__':
    main()
