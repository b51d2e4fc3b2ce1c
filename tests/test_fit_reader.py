"""The reader fit's decision maths (bench/fit_reader.py) on stub decisions: exact thresholds and calibration."""
from __future__ import annotations

import pytest

from bench.fit_reader import calibration, choose_threshold, choose_threshold_passed

# (best sentence probability, correct if answered, answerable, vetoed)
DEC = [(0.9, True, True, False), (0.6, True, True, False), (0.5, False, True, False), (0.3, True, True, False),
       (0.4, False, False, False), (0.2, False, False, False), (0.7, False, False, True)]


def test_threshold_that_passes_the_most_questions():
    _, curve = choose_threshold(DEC, 0.8)
    # t <= 0.2: 3 right answers + the veto = 4; t = 0.21..0.3: 3 right + 2 abstentions (0.2, veto) = 5;
    # t = 0.31..0.4: 2 right + 2 = 4; t = 0.41..0.6: 2 right + 3 = 5; t > 0.6: 1 right + 3 = 4.
    # A tie goes to the lowest threshold (answer more)
    assert choose_threshold_passed(DEC, curve) == pytest.approx(0.21)


def test_threshold_for_a_stated_precision_and_the_curve():
    t, curve = choose_threshold(DEC, 0.99)
    assert t == pytest.approx(0.51)  # answered {0.9, 0.6}: both right
    at = {c["threshold"]: c for c in curve}
    assert at[0.0]["coverage"] == pytest.approx(6 / 7) and at[0.0]["precision"] == pytest.approx(3 / 6)
    assert at[0.0]["accuracy"] == pytest.approx(3 / 4) and at[0.0]["abstention_accuracy"] == pytest.approx(1 / 3)
    assert at[0.51]["abstention_accuracy"] == pytest.approx(1.0)


def test_brier_and_ece_are_exact():
    dec = [(0.8, True, True, False), (0.8, False, True, False), (0.1, False, True, False), (0.3, True, True, False)]
    cal = calibration(dec, bins=10)
    assert cal["brier"] == pytest.approx(round((0.04 + 0.64 + 0.01 + 0.49) / 4, 4))
    # bins: 0.8 -> mean p 0.8 vs 0.5 right (weight 1/2); 0.1 -> 0.1 vs 0 (1/4); 0.3 -> 0.3 vs 1 (1/4)
    assert cal["ece"] == pytest.approx(round(0.5 * 0.3 + 0.25 * 0.1 + 0.25 * 0.7, 4))
