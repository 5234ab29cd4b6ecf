"""Key names that Bytewax spreads evenly over workers.

Bytewax 0.21 routes a stateful key to worker ``siphash13(key) % workers``
(Rust's ``DefaultHasher``: SipHash-1-3 with zero keys, over the key's bytes
followed by ``0xff``). With naive names the spread is poor: shards "0".."3"
all land on worker 0 of two. So keyed steps whose keys we choose (window
shards, per-partition clocks) take their names from :func:`balanced_keys`,
picked so that every worker count up to :data:`MAX_WORKERS` gets an even
share. Placement only affects balance, never results: if Bytewax ever
routes differently, the flow is still correct, just less even.
"""

from __future__ import annotations

import functools

MAX_WORKERS = 16
_MASK = (1 << 64) - 1


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys, as Rust's ``DefaultHasher`` computes it."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    whole = len(data) - len(data) % 8
    for start in range(0, whole, 8):
        word = int.from_bytes(data[start : start + 8], "little")
        v3 ^= word
        sip_round()
        v0 ^= word
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker Bytewax routes ``key`` to, out of ``workers``."""
    return siphash13(key.encode() + b"\xff") % workers


@functools.cache
def balanced_keys(count: int, prefix: str = "s") -> tuple[str, ...]:
    """``count`` key names, each placed where the workers are least loaded.

    Greedy and deterministic: for each new key, among candidate names
    ``<prefix><n>``, take the one whose worker is least loaded summed over
    every worker count from 2 to :data:`MAX_WORKERS`.

    >>> keys = balanced_keys(4)
    >>> sorted(worker_of(k, 2) for k in keys), sorted(worker_of(k, 4) for k in keys)
    ([0, 0, 1, 1], [0, 1, 2, 3])
    """
    loads = {w: [0] * w for w in range(2, MAX_WORKERS + 1)}
    chosen: list[str] = []
    candidate = 0
    pool: list[tuple[str, dict[int, int]]] = []
    while len(chosen) < count:
        while len(pool) < 256:
            name = f"{prefix}{candidate}"
            digest = siphash13(name.encode() + b"\xff")
            pool.append((name, {w: digest % w for w in loads}))
            candidate += 1
        best = min(range(len(pool)), key=lambda i: (sum(loads[w][pool[i][1][w]] for w in loads), i))
        name, places = pool.pop(best)
        for w, worker in places.items():
            loads[w][worker] += 1
        chosen.append(name)
    return tuple(chosen)
