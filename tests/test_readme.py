"""The README's common jobs on your own data run as written, in order, on data this test writes where they
expect it: an open_clip CSV of world pairs, and an image folder of world shapes split into train and test. Its
benchmark section runs as written too, on the fixture copies it lays out itself."""

import json
import pytest
import re
import subprocess
import sys
from pathlib import Path
from clipkit.data.world import WorldConfig, export_csv, make_pairs, to_pil, world_tasks

ROOT = Path(__file__).resolve().parents[1]


def _jobs():
    "The code blocks of the README's common-jobs section, with their languages."
    text = (ROOT / 'README.md').read_text()
    section = text.split('## Your own data: the common jobs', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```(python|bash)\n(.*?)```', section, re.S)


def _write_data(folder: Path):
    world = WorldConfig(shapes=('circle', 'square', 'star'), holdout=())
    export_csv(make_pairs(world, 256, seed=0), folder / 'data', name='pairs.csv')
    for split, seed in (('train', 1), ('test', 2)):
        task = world_tasks(world, n_per_class=3, seed=seed, names=['shape'])['shape']
        for i, (image, label) in enumerate(zip(task.images, task.labels.tolist())):
            out = folder / 'data' / 'shapes' / split / task.classnames[label]
            out.mkdir(parents=True, exist_ok=True)
            to_pil(image).save(out / f'{i:04d}.png')


def test_the_jobs_run_as_written(tmp_path):
    jobs = _jobs()
    assert len(jobs) == 6, 'the README shows six jobs'
    _write_data(tmp_path)
    (tmp_path / '.venv').symlink_to(Path(sys.executable).parents[1])
    settings = f'[clipkit]\nstudies_dir = {ROOT / "nbs" / "studies"}\ncache_dir = {tmp_path / ".cache"}\n'
    (tmp_path / 'settings.ini').write_text(settings)
    for i, (language, code) in enumerate(jobs, 1):
        command = [sys.executable, '-c', code] if language == 'python' else ['bash', '-c', code]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f'job {i} runs as written:\n{code}\n{done.stderr[-3000:]}'
    assert (tmp_path / 'checkpoints' / 'mine').is_dir(), 'job 1 saved its checkpoint'
    assert (tmp_path / 'results' / 'quickstart-40' / 'metrics.json').is_file(), 'job 5 wrote its metrics'
    result = json.loads((tmp_path / 'results' / 'shapes.json').read_text())
    assert set(result['metrics']) == {'acc1', 'acc5', 'mean_per_class_recall'}, (
        "job 6 wrote CLIP_benchmark's JSON"
    )


@pytest.mark.slow  # four fresh processes and a short training run: about 70 s
def test_the_benchmark_section_runs_as_written(tmp_path):
    text = (ROOT / 'README.md').read_text()
    section = text.split('## Benchmarks you already have', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```(python|bash)\n(.*?)```', section, re.S)
    assert [language for language, _ in blocks] == ['python', 'bash'], 'the fixtures, then the suite'
    (tmp_path / '.venv').symlink_to(Path(sys.executable).parents[1])
    (tmp_path / 'settings.ini').write_text(f'[clipkit]\ncache_dir = {tmp_path / ".cache"}\n')
    for language, code in blocks:
        command = [sys.executable, '-c', code] if language == 'python' else ['bash', '-c', code]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f'runs as written:\n{code}\n{done.stderr[-3000:]}'
        if language == 'python':
            assert "'train': 4, 'val': 4, 'test': 6" in done.stdout, 'two shots of the two base classes'
    assert (tmp_path / 'data' / 'benchmarks' / 'imagenet-rendition' / 'classnames.txt').is_file()
    assert len(list((tmp_path / 'results' / 'bench').glob('*_*.json'))) == 10, 'three by three, and retrieval'
    assert (tmp_path / 'results' / 'bench' / 'benchmark.png').is_file(), 'the heat map'
