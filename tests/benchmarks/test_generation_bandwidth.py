"""The arithmetic behind `benchmarks/generation.py --device cuda` (the GPU run itself needs a GPU)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("bench_generation", ROOT / "benchmarks" / "generation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bandwidth_share_reads_the_weights_once_per_decode_step():
    gen = _module()
    # 1 GB of weights, 64 rows at 6400 tokens/s = 100 decode steps/s = 100 GB/s of a 1000 GB/s card
    assert gen.bandwidth_share(10**9, 6400.0, 64, 1000.0) == pytest.approx(0.1)
    assert gen.bandwidth_share(10**9, 100.0, 1, 1000.0) == pytest.approx(0.1)


@pytest.mark.parametrize("name, gbs", [("NVIDIA H100 PCIe", 2000), ("NVIDIA H100 80GB HBM3", 3350),
                                       ("NVIDIA H200", 4800), ("NVIDIA A100-SXM4-80GB", 2039),
                                       ("NVIDIA A100-SXM4-40GB", 1555), ("Tesla T4", 320), ("Unknown GPU", None)])
def test_card_bandwidth_matches_the_most_specific_name_first(name, gbs):
    assert _module().card_bandwidth_gbs(name) == gbs
