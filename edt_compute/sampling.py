"""Uniform draws of any subset of scenario ids, each row a function of (seed, id) only.

Memory and time follow the ids asked for, never the sample count: a chunk of k rows of a
design of 10^12 points costs what k rows of a design of 10^3 points cost.

- `mc`: a Philox stream keyed by the seed; scenario i owns a fixed run of counters, reached by
  `advance` (O(1)).
- `lhs`: for each dimension j, scenario i lies in stratum pi_j(i) of the N equal strata of
  [0, 1), pi_j a keyed pseudorandom permutation of [0, N) (a Feistel network over the smallest
  even-bit power of 2 >= N, restricted to [0, N) by cycle walking, keyed by (seed, j)); the
  position inside the stratum comes from a Philox stream keyed by the seed (a different key
  from `mc`'s). Since pi_j is a bijection, each stratum of each dimension holds exactly one of
  the N points: a Latin hypercube, built per index.
- `sobol`: scipy's scrambled Sobol sequence (its direction numbers and scrambling). The first
  point of each run of consecutive ids is computed directly, as the XOR of the direction
  numbers picked by the Gray code of its index, and the run continues as scipy's generator
  does; scipy's own fast_forward walks every skipped point (O(i): hours for i ~ 1e12).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.stats import qmc

# A different Philox key from plain Monte Carlo's (which uses the seed, < 2**63), so an LHS
# jitter stream never replays an MC stream of the same seed.
_LHS_JITTER_KEY = 1 << 64
_FEISTEL_ROUNDS = 6
# scipy's default precision; kept whenever it suffices so that Sobol values stay those of
# earlier releases. Beyond 2**30 points the 64-bit sequence is needed.
_SOBOL_BITS = 30


def open_unit(u: np.ndarray) -> np.ndarray:
    """Clip in place strictly inside (0, 1), so ppfs never return infinities."""
    return np.clip(u, 2.0**-54, 1.0 - 2.0**-53, out=u)


def uniforms(
    method: str,
    samples: int,
    d: int,
    seed: int,
    ids: np.ndarray,
    replicates: int | None = None,
) -> np.ndarray:
    """Uniform draws of the scenarios `ids`, shape (d, len(ids)), each a function of (seed, id).

    Dimension-major so that each parameter's ppf runs over contiguous memory. `replicates`
    (sobol only) makes the draws randomised QMC: scenario i is point i // R of replicate
    i % R, an independently scrambled Sobol sequence keyed by (seed, replicate), so that a
    prefix of k * R ids holds the first k points of every replicate and the replicates'
    spread measures the error honestly (edt_compute.convergence).
    """
    if d == 0 or ids.size == 0:
        return np.empty((d, ids.size))
    # Sorting turns a shuffled chunk back into runs of consecutive ids, each drawn in one go.
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if method == "mc":
        buf = _philox(seed, sorted_ids, d)
    elif method == "lhs":
        buf = _latin_hypercube(samples, d, seed, sorted_ids)
    elif replicates is None:
        bits = _sobol_bits(samples)
        buf = _sobol_points(d, seed, None, bits, sorted_ids)
    else:
        bits = _sobol_bits(-(-samples // replicates))
        buf = np.empty((d, ids.size))
        replicate = sorted_ids % replicates
        for r in np.unique(replicate).tolist():
            rows = np.flatnonzero(replicate == r)
            buf[:, rows] = _sobol_points(d, seed, r, bits, sorted_ids[rows] // replicates)
    if np.any(order[1:] < order[:-1]):
        out = np.empty_like(buf)
        out[:, order] = buf
        buf = out
    return open_unit(buf)


def _runs(sorted_ids: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) slices of runs of consecutive values in a sorted array."""
    breaks = np.flatnonzero(np.diff(sorted_ids) != 1) + 1
    return list(
        zip(np.r_[0, breaks].tolist(), np.r_[breaks, sorted_ids.size].tolist(), strict=True)
    )


def _philox(key: int, sorted_ids: np.ndarray, d: int) -> np.ndarray:
    """Uniforms in [0, 1), shape (d, n): row i from Philox(key) counters of scenario i."""
    # Each scenario owns a whole number of Philox counter steps (4 uint64 each), so
    # scenario i's stream starts at counter i * width / 4 for any chunking.
    width = -(-d // 4) * 4
    buf = np.empty((d, sorted_ids.size))
    for lo, hi in _runs(sorted_ids):
        bitgen = np.random.Philox(key=key)
        bitgen.advance(int(sorted_ids[lo]) * width // 4)
        buf[:, lo:hi] = np.random.Generator(bitgen).random((hi - lo, width))[:, :d].T
    return buf


# --- Latin hypercube by index ------------------------------------------------------------------

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective avalanche of 64-bit words (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _feistel(x: np.ndarray, half: int, keys: np.ndarray) -> np.ndarray:
    """A keyed bijection of [0, 4**half): balanced Feistel rounds on two `half`-bit words."""
    shift, mask = np.uint64(half), np.uint64((1 << half) - 1)
    left, right = x >> shift, x & mask
    for k in keys:
        left, right = right, left ^ (_mix(right ^ k) & mask)
    return (left << shift) | right


def permute(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """pi(x) for x in [0, n): a keyed pseudorandom permutation of [0, n), computed per index.

    The Feistel bijection of the smallest [0, 4**h) >= n is followed until it lands back in
    [0, n) (cycle walking), which restricts it to a bijection of [0, n). Since 4**h < 4 n, a
    walk takes fewer than 4 steps on average.
    """
    half = max(1, math.ceil(math.log2(n) / 2)) if n > 1 else 1
    while 4**half < n:  # guard the float log2 near powers of 2
        half += 1
    out = _feistel(x.astype(np.uint64), half, keys)
    limit = np.uint64(n)
    pending = np.flatnonzero(out >= limit)
    while pending.size:
        walked = _feistel(out[pending], half, keys)
        out[pending] = walked
        pending = pending[walked >= limit]
    return out


@lru_cache(maxsize=256)
def _round_keys(seed: int, dim: int) -> np.ndarray:
    keys = np.random.SeedSequence([seed, dim]).generate_state(_FEISTEL_ROUNDS, np.uint64)
    keys.flags.writeable = False
    return keys


def _latin_hypercube(samples: int, d: int, seed: int, sorted_ids: np.ndarray) -> np.ndarray:
    u = _philox(seed + _LHS_JITTER_KEY, sorted_ids, d)
    for j in range(d):
        stratum = permute(sorted_ids, samples, _round_keys(seed, j))
        u[j] += stratum.astype(np.float64)
    u /= samples
    return u


# --- Sobol by index ----------------------------------------------------------------------------


def _sobol_bits(points: int) -> int:
    return _SOBOL_BITS if points <= 2**_SOBOL_BITS else 64


# Randomised QMC cycles through all its replicates in every chunk; keep them all warm.
@lru_cache(maxsize=128)
def _sobol_state(d: int, seed: int, replicate: int | None, bits: int) -> tuple[np.ndarray, ...]:
    """scipy's scrambled direction numbers (d, bits) and digital shift (d,) of one sequence."""
    rng = np.random.default_rng([seed, replicate]) if replicate is not None else seed
    engine = qmc.Sobol(d, scramble=True, bits=bits, rng=rng)
    # scipy exposes no public accessor for these; tests pin that points built from them
    # equal the engine's own random() output.
    sv = np.array(engine._sv, dtype=np.uint64)
    shift = np.array(engine._shift, dtype=np.uint64)
    sv.flags.writeable = shift.flags.writeable = False
    return sv, shift


def sobol_points(
    d: int, seed: int, replicate: int | None, bits: int, positions: np.ndarray
) -> np.ndarray:
    """Raw points `positions` of the scrambled Sobol sequence, in [0, 1), shape (d, n)."""
    sv, shift = _sobol_state(d, seed, replicate, bits)
    pos = positions.astype(np.uint64)
    quasi = np.empty((d, pos.size), dtype=np.uint64)
    for lo, hi in _runs(pos.astype(np.int64)):
        # The first point of a run from the Gray code of its index, O(bits)...
        first = int(pos[lo])
        gray = first ^ (first >> 1)
        start = shift.copy()
        for k in range(gray.bit_length()):
            if gray >> k & 1:
                start ^= sv[:, k]
        quasi[:, lo] = start
        if hi - lo > 1:
            # ... then each next one flips the direction number of its lowest set bit, as
            # scipy's generator does: a running XOR over the run, O(d) per point.
            nxt = pos[lo + 1 : hi]
            lowest = np.log2((nxt & (~nxt + np.uint64(1))).astype(np.float64)).astype(np.intp)
            steps = sv[:, lowest]
            np.bitwise_xor.accumulate(steps, axis=1, out=steps)
            quasi[:, lo + 1 : hi] = steps ^ start[:, None]
    return quasi.astype(np.float64) * (1.0 / 2.0**bits)


def _sobol_points(
    d: int, seed: int, replicate: int | None, bits: int, positions: np.ndarray
) -> np.ndarray:
    # Sobol values sit on a grid that includes 0; centring them in their cells keeps them
    # off the ends.
    return sobol_points(d, seed, replicate, bits, positions) + 0.5 * 2.0**-bits
