"""Same seed → byte-identical stream (even across processes); another seed → another stream."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from streams.simulate import SimConfig, simulate

CFG = SimConfig(feeders=2, homes=4, chargers=3, hours=6, seed=7, bad_rate=0.05)


def _digest(cfg: SimConfig) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for m in simulate(cfg):
        n += 1
        for part in (m.topic.encode(), m.key, str(m.timestamp).encode(), m.value,
                     repr(m.headers).encode()):
            h.update(len(part).to_bytes(4, "big") + part)
    return n, h.hexdigest()


def test_same_seed_gives_identical_bytes() -> None:
    first = [(m.topic, m.key, m.timestamp, m.value, m.headers) for m in simulate(CFG)]
    second = [(m.topic, m.key, m.timestamp, m.value, m.headers) for m in simulate(CFG)]
    assert len(first) > 100
    assert first == second


def test_different_seed_gives_different_stream() -> None:
    other = SimConfig(**{**CFG.__dict__, "seed": 8})
    assert _digest(CFG)[1] != _digest(other)[1]


def test_identical_across_processes_with_different_hash_seeds() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r});"
        "from tests.unit.simulate.test_simulate_determinism import _digest, CFG; print(*_digest(CFG))"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.add(out.stdout.strip())
    n, digest = _digest(CFG)
    assert outs == {f"{n} {digest}"}
