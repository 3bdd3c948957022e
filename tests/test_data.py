import numpy as np
import pytest

from rnnbench.data import canonical_weights, make_batch, weight_shapes
from rnnbench.scenarios import PROFILES, SCENARIOS, SEED_SCENARIOS, apply_profile, select


@pytest.mark.parametrize("name", ["gru-1x320-ce", "lstm-4x320bi-ce", "lstm-1x320-ce"])
def test_ce_batch_matches_the_seed(name):
    b = make_batch(SCENARIOS[name])
    assert b.x.shape == (25, 1000, 123) and b.x.dtype == np.float32
    assert b.x.min() >= -1 and b.x.max() <= 1 and b.x.std() > 0.5
    assert b.y.shape == (25,) and b.y.min() >= 0 and b.y.max() < 25
    assert (b.lengths == 1000).all()


def test_ctc_batch_matches_the_seed():
    b = make_batch(SCENARIOS["lstm-4x320bi-ctc"])
    assert b.x.shape == (25, 1000, 123)
    assert b.lengths.tolist() == np.linspace(500, 1000, 25).astype(int).tolist()
    assert b.lengths[0] == 500 and b.lengths[1] == 520 and b.lengths[-1] == 1000
    assert b.y.shape == (25, 100) and b.y.min() >= 1 and b.y.max() <= 57
    assert set(np.unique(b.y)) == set(range(1, 58))  # every label appears, blank 0 never
    assert (b.label_lengths == 100).all()


def test_data_is_deterministic():
    s = SCENARIOS["lstm-4x320bi-ctc"]
    a, b = make_batch(s), make_batch(s)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    w1, w2 = canonical_weights(s), canonical_weights(s)
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)


def test_profiles_scale_time_and_labels_never_the_network():
    quick = apply_profile(SCENARIOS["lstm-4x320bi-ctc"], PROFILES["quick"])
    assert (quick.time_steps, quick.hidden, quick.layers, quick.batch) == (100, 320, 4, 25)
    b = make_batch(quick)
    assert b.lengths.min() == 50 and b.lengths.max() == 100 and b.y.shape == (25, 10)
    seed = apply_profile(SCENARIOS["lstm-4x320bi-ctc"], PROFILES["seed"])
    assert seed == SCENARIOS["lstm-4x320bi-ctc"]
    smoke = apply_profile(SCENARIOS["lstm-4x320bi-ctc"], PROFILES["smoke"])
    assert (smoke.time_steps, smoke.hidden, smoke.batch) == (12, 8, 4)
    assert make_batch(smoke).y.shape == (4, 2)


def test_canonical_weight_shapes():
    s = SCENARIOS["lstm-4x320bi-ce"]
    shapes = weight_shapes(s)
    assert shapes["l0.fw.w_ih"] == (1280, 123) and shapes["l1.bw.w_ih"] == (1280, 640)
    assert shapes["head.w"] == (25, 640)
    assert sum(int(np.prod(v)) for v in shapes.values()) == 8_543_385  # the seed's PyTorch count


def test_select_globs_and_errors():
    assert select(None, SCENARIOS, SEED_SCENARIOS) == list(SEED_SCENARIOS)
    assert select(["lstm-4*"], SCENARIOS) == ["lstm-4x320bi-ce", "lstm-4x320bi-ctc"]
    with pytest.raises(ValueError, match="nope"):
        select(["lstm-*", "nope"], SCENARIOS)
