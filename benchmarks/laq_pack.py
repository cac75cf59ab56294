"""LAQ's wire form: packing and unpacking an upload's level indices, where `bits`
divides 8 (whole codes per byte, workers/aggregation/laq.py) against the bit-by-bit
packing every upload used before (one byte per bit, then numpy's packbits: the same
bytes, as a test checks). 1M and 5M codes (the 5 M LSTM of docs/benchmarks.md's
time-to-accuracy runs) at 8 bits, the default, and 4; the median of `--repeat`
runs of each, in this process, with the ratio.

    .venv/bin/python benchmarks/laq_pack.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from workers.aggregation.laq import pack, unpack


def bit_by_bit(index: torch.Tensor, radius: float, bits: int) -> np.ndarray:
    """The packing before: a uint8 per bit of every code, then packbits."""
    codes = index.numpy().astype(np.uint32)
    bit_matrix = ((codes[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    payload = np.packbits(bit_matrix.reshape(-1), bitorder="little")
    return np.concatenate([np.frombuffer(np.float64(radius).tobytes(), np.uint8), payload])


def bit_by_bit_unpack(wire: np.ndarray, bits: int, size: int) -> torch.Tensor:
    bit_vector = np.unpackbits(wire[8:], bitorder="little")[: size * bits]
    weights = (1 << np.arange(bits, dtype=np.int64)).astype(np.int64)
    return torch.from_numpy(bit_vector.reshape(size, bits).astype(np.int64) @ weights)


def median_ms(
    run: Callable[[torch.Tensor, int, int], object], index: torch.Tensor, bits: int, repeat: int
) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run(index, bits, index.numel())
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def round_trip(index: torch.Tensor, bits: int, size: int) -> object:
    return unpack(pack(index, 0.5, bits), bits, size)


def bit_by_bit_round_trip(index: torch.Tensor, bits: int, size: int) -> object:
    return bit_by_bit_unpack(bit_by_bit(index, 0.5, bits), bits, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rng = np.random.default_rng(0)
    for size in (1_000_000, 5_000_000):
        for bits in (8, 4):
            index = torch.from_numpy(rng.integers(0, 2**bits, size=size))
            wire = pack(index, 0.5, bits)
            assert np.array_equal(wire, bit_by_bit(index, 0.5, bits))
            new = median_ms(round_trip, index, bits, args.repeat)
            old = median_ms(bit_by_bit_round_trip, index, bits, args.repeat)
            print(
                f"{size:>9,} codes, {bits} bits: pack + unpack {new:7.1f} ms "
                f"(bit by bit {old:7.1f} ms; x{old / new:.1f} faster)"
            )


if __name__ == "__main__":
    main()
