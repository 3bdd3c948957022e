import math

import numpy as np
import pytest

from rnnbench import stats


def test_summary_of_known_samples():
    t = [0.108, 0.100, 0.104, 0.102, 0.106]
    s = stats.summarize(t)
    assert s["median_s"] == pytest.approx(0.104)
    assert s["mean_s"] == pytest.approx(0.104)
    assert s["stdev_s"] == pytest.approx(np.std(t, ddof=1))
    assert s["p10_s"] == pytest.approx(0.1008) and s["p90_s"] == pytest.approx(0.1072)
    assert 0.100 <= s["ci_low_s"] <= 0.104 <= s["ci_high_s"] <= 0.108
    assert s["stable"]  # stdev 3% of the mean


def test_ci_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    few = stats.summarize(rng.normal(1, 0.05, 10))
    many = stats.summarize(rng.normal(1, 0.05, 1000))
    assert many["ci_high_s"] - many["ci_low_s"] < few["ci_high_s"] - few["ci_low_s"]


def test_wide_spread_is_unstable():
    assert not stats.summarize([0.1, 0.1, 0.2, 0.1, 0.3])["stable"]
    assert not stats.summarize([0.1, 0.1])["stable"]  # too few samples to tell
    with pytest.raises(ValueError):
        stats.summarize([])


def test_checks_pass_on_a_healthy_run():
    c = stats.run_checks([3.0, 2.9, 2.8, 2.85, 2.7], [0.1] * 5, loop_s=0.5001)
    assert c["finite"] and c["decreasing"] and c["overhead"]
    assert stats.checks_label(c) == "ok"


def test_each_check_can_fail():
    assert not stats.run_checks([3.0, math.nan, 2.0], [0.1] * 3, 0.3)["finite"]
    assert not stats.run_checks([3.0, math.inf], [0.1] * 2, 0.2)["finite"]
    assert not stats.run_checks([3.0, 3.1, 3.2], [0.1] * 3, 0.3)["decreasing"]
    assert not stats.run_checks([3.0, 1.0, 3.5], [0.1] * 3, 0.3)["decreasing"]  # ends above its start
    c = stats.run_checks([3.0, 2.0], [0.1, 0.1], loop_s=0.21)  # 4.8% of the loop unaccounted for
    assert not c["overhead"] and c["overhead_pct"] == pytest.approx(100 * 0.01 / 0.21, rel=1e-3)
    assert stats.checks_label(c) == "failed: overhead"


def test_overhead_floor_forgives_scheduling_noise_on_tiny_steps():
    # 3 steps of 2 ms with 0.3 ms unaccounted for: 4.8%, but under 0.2 ms a step.
    assert stats.run_checks([3.0, 2.0, 1.0], [0.002] * 3, loop_s=0.0063)["overhead"]
    # 3 steps of 2 ms with 1.5 ms unaccounted for: over the floor, a real cost.
    assert not stats.run_checks([3.0, 2.0, 1.0], [0.002] * 3, loop_s=0.0075)["overhead"]
