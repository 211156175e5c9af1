"""harness.pki.detrsa: a seed gives one key, whichever modular power (GMP's or Python's) computed it."""

from __future__ import annotations

import random

import pytest

from harness.pki import detrsa


def key_numbers(seed: str, bits: int) -> tuple[int, int, int]:
    numbers = detrsa.rsa_key.__wrapped__(seed, bits).private_numbers()  # past the per-process cache
    return numbers.p, numbers.q, numbers.d


def test_the_dev_install_has_gmp() -> None:
    assert detrsa._gmp_powmod is not None, "gmpy2 (the pki extra) is missing: scripts/setup.sh installs .[dev]"


@pytest.mark.parametrize("seed", ["card-auth", "another seed", "長い種"])
def test_gmp_and_python_give_the_same_key(seed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    by_gmp = key_numbers(seed, 1024)
    monkeypatch.setattr(detrsa, "_gmp_powmod", None)
    assert key_numbers(seed, 1024) == by_gmp


def test_modular_power_is_pow_for_both_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    cases = [(rng.getrandbits(1000), rng.getrandbits(1024), rng.getrandbits(1024) | 1) for _ in range(20)]
    cases += [(0, 5, 7), (3, 0, 11), (2, 10, 1)]
    expected = [pow(*case) for case in cases]
    assert [detrsa.modular_power(*case) for case in cases] == expected
    monkeypatch.setattr(detrsa, "_gmp_powmod", None)
    assert [detrsa.modular_power(*case) for case in cases] == expected
