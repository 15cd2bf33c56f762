"""What open_clip's 49,408-row token table costs per training step of the tiny models.

Compares a dense AdamW update of the whole table with the trainer's `sparse_embedding` option (the table
marked sparse and updated by SparseAdam, touching only the rows in the batch), and with the table frozen
(the floor). Run: python bench/token_table.py"""

import time, torch
from clipkit.models import create
from clipkit.data.world import WorldConfig, make_pairs
from clipkit.train import TrainConfig, make_optimizers, train_step
from clipkit.features import image_batch


def step_ms(model_name, mode, pool, tokens, steps=20, B=256):
    torch.manual_seed(0)
    m, tok, _ = create(model_name)
    m.train()
    cfg = TrainConfig(sparse_embedding=(mode == 'sparse'))
    if mode == 'frozen':
        m.token_embedding.weight.requires_grad_(False)
    opts = make_optimizers(m, cfg)
    times = []
    for s in range(steps + 3):
        idx = torch.randint(0, len(pool), (B,), generator=torch.Generator().manual_seed(s))
        x, t = image_batch(m, pool.images[idx]), tokens[idx]
        t0 = time.perf_counter()
        for o in opts:
            o.zero_grad(set_to_none=True)
        train_step(m, x, t, 'clip', cfg)
        for o in opts:
            o.step()
        if s >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


if __name__ == '__main__':
    torch.set_num_threads(2)
    pool = make_pairs(WorldConfig(), 4096, seed=0)
    for name in ('tiny-rn', 'tiny-vit'):
        _, tok, _ = create(name)
        tokens = tok(pool.captions)
        r = {mode: step_ms(name, mode, pool, tokens) for mode in ('dense', 'sparse', 'frozen')}
        print(
            f"{name}: median step (batch 256, 2 threads): dense AdamW {r['dense']:.0f} ms, sparse rows "
            f"{r['sparse']:.0f} ms, "
            f"table frozen {r['frozen']:.0f} ms -> the dense table costs {r['dense'] - r['frozen']:.0f} ms "
            f"({(r['dense'] - r['frozen']) / r['dense']:.0%}); sparse updates cost "
            f"{r['sparse'] - r['frozen']:.0f} ms"
        )
