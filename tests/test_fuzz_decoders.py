"""A short seeded pass of bench/fuzz.py over every decoder (the long runs are manual). Fails
with the offending input in hex if a decoder raises outside its contract."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "gwg_fuzz", Path(__file__).resolve().parents[1] / "bench" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

SECONDS_PER_TARGET = 0.6


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_decoder_survives_seeded_mutations(target):
    failures = fuzz.fuzz(target, seed=20261130, iterations=3000,
                         deadline=time.monotonic() + SECONDS_PER_TARGET)
    assert not failures, "\n".join(failures)


def test_the_fuzzer_finds_an_unguarded_recursion():
    """The fuzzer itself works: a bare json.loads (what the register used before) is caught."""
    fn, allowed, seeds = fuzz.TARGETS["register"]
    fuzz.TARGETS["bare-json"] = (lambda d: json.loads(d.decode("utf-8", "replace")),
                                 (ValueError,), seeds)
    try:
        failures = fuzz.fuzz("bare-json", seed=1, iterations=20000,
                             deadline=time.monotonic() + 5)
    finally:
        del fuzz.TARGETS["bare-json"]
    assert any("RecursionError" in f for f in failures), failures[:1]
