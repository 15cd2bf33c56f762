"""MetaCLIP curation on a 2-worker Dask LocalCluster equals the single-process run, bad rows and a broken
shard included, and leaves this process's environment as it was."""

import os
from pathlib import Path
import pandas as pd, pytest
from clipkit.data.world import WorldConfig, make_pairs, world_entries
from clipkit.curation_scale import write_shards, run_serial, run_dask, read_curated


def test_dask_equals_single_process(tmp_path):
    pytest.importorskip('dask.distributed')

    w = WorldConfig(zipf=1.5)
    shards = write_shards(make_pairs(w, 4000, seed=1), tmp_path / 'raw', shard_size=700)  # 6 shards
    d = pd.read_parquet(shards[1])
    d.loc[d.index[:2], 'caption'] = [None, '']
    d.to_parquet(shards[1], index=False)
    (tmp_path / 'raw' / 'broken.parquet').write_bytes(b'\x00garbage')
    shards.append(str(tmp_path / 'raw' / 'broken.parquet'))
    ents = world_entries(w)
    ser = run_serial(shards, ents, t=80, out_dir=tmp_path / 'serial', seed=3)
    threads_setting = os.environ.get('OMP_NUM_THREADS')
    dk = run_dask(shards, ents, t=80, out_dir=tmp_path / 'dask', seed=3)  # its own 2-worker LocalCluster
    assert os.environ.get('OMP_NUM_THREADS') == threads_setting, "Dask's OMP_NUM_THREADS=1 does not stay"
    assert read_curated(ser).key.tolist() == read_curated(dk).key.tolist(), 'Dask keeps the serial rows'
    assert (ser['counts'] == dk['counts']).all(), 'and counts the same matches'
    assert ser['bad_rows'] == 2, 'the two bad captions are counted'
    assert dk['bad_rows'] == 2, 'by both executors'
    failed = [Path(f['shard']).name for f in dk['failed_shards']]
    assert failed == ['broken.parquet'], 'the broken shard is reported by name'
    assert 0 < len(read_curated(dk)) < 4000 - 2, 'balancing keeps some rows, not all'
    other = run_serial(shards, ents, t=80, out_dir=tmp_path / 'other', seed=4)
    assert read_curated(other).key.tolist() != read_curated(ser).key.tolist(), 'another seed keeps other rows'
