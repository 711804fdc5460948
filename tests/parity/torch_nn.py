"""PyTorch references for dropout and embedding (lib/functional/nn.c)."""
import numpy as np
import torch
import torch.nn.functional as F

from torch_ops import op

M64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256:
    """lib/tensor/random.c's td_rng: xoshiro256** seeded through splitmix64."""

    def __init__(self, seed):
        self.s = []
        x = seed & M64
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def next_u64(self):
        s = self.s
        result = (_rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result


def dropout_keep_mask(n, p, seed):
    """nn.c's draw_mask: each u64 decides two elements (low, then high 32
    bits), kept when the draw is below (1 - p) * 2^32, p as float32."""
    rng = Xoshiro256(seed)
    threshold = int((1.0 - float(np.float32(p))) * 4294967296.0)
    keep = []
    while len(keep) < n:
        r = rng.next_u64()
        keep.append((r & 0xFFFFFFFF) < threshold)
        keep.append((r >> 32) < threshold)
    return keep[:n]


@op("dropout")
def dropout(x, p):
    t = x[0]
    if "seed" not in p:  # deterministic cases: identity, eval, p == 1
        return F.dropout(t, p["p"], training=p["training"])
    keep = torch.tensor(dropout_keep_mask(t.numel(), p["p"], p["seed"]), dtype=t.dtype)
    return t * keep.reshape(t.shape) / (1.0 - p["p"])


@op("embedding")
def embedding(x, p):
    return F.embedding(x[0], x[1])
