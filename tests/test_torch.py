"""The PyTorch implementations: the seed's parameter counts, one verified step of each on
every scenario it runs, torch-packed's skips, an end-to-end smoke run, and that
verification catches broken models."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import build_impl, summary  # noqa: E402
from rnnbench.data import canonical_weights, make_batch  # noqa: E402
from rnnbench.impls import IMPLEMENTATIONS  # noqa: E402
from rnnbench.impls.base import Config, Unsupported  # noqa: E402
from rnnbench.scenarios import SCENARIOS, SEED_SCENARIOS  # noqa: E402
from rnnbench.verify import VERIFY_EPS, VERIFY_LR, compare, delta_err, verify_scenario  # noqa: E402

TORCH_IMPLS = [n for n, i in IMPLEMENTATIONS.items() if i.framework == "torch"]
SEED_COUNTS = {"gru-1x320-ce": 435_225, "lstm-4x320bi-ce": 8_543_385,
               "lstm-4x320bi-ctc": 8_564_538, "lstm-1x320-ce": 577_625}


build = build_impl
PACKED_SKIP = "full-length sequences need no packing: the same as torch-nn without masking"


def skips(impl, name):
    """torch-packed runs the CTC scenario only: without lengths it would be torch-nn."""
    return impl == "torch-packed" and SCENARIOS[name].loss != "ctc"


def test_every_torch_impl_is_registered():
    assert set(TORCH_IMPLS) == {"torch-nn", "torch-packed", "torch-cell", "torch-custom", "torch-compile"}


@pytest.mark.parametrize("impl", TORCH_IMPLS)
@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_parameter_counts_match_the_seed(impl, name):
    s = SCENARIOS[name]
    cfg = Config(s, make_batch(s), canonical_weights(s))
    if skips(impl, name):
        with pytest.raises(Unsupported, match=PACKED_SKIP):
            build(impl, cfg)
        return
    assert build(impl, cfg).parameters == SEED_COUNTS[name]  # built, not trained


@pytest.mark.parametrize("impl", TORCH_IMPLS)
@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_one_step_matches_the_reference(impl, name):
    if skips(impl, name):
        pytest.skip(PACKED_SKIP)
    s = verify_scenario(SCENARIOS[name])
    w0 = canonical_weights(s)
    trainer = build(impl, Config(s, make_batch(s), w0, lr=VERIFY_LR, adam_eps=VERIFY_EPS))
    start = trainer.weights()  # the round trip through the model's parameters is exact
    assert start.keys() == w0.keys() and all(np.array_equal(start[k], w0[k]) for k in w0)
    loss = trainer.step()
    verdict = compare(s, make_batch(s), w0, loss, trainer.weights(), trainer.notes)
    assert verdict.ok, verdict.message
    assert trainer.notes["adam"] == "standard" and verdict.worst[1] < 1e-4


def test_packed_and_reversed_masking_agree():
    """torch-packed (pack_padded_sequence) and torch-nn (per-sequence reversal) are two
    ways to mask the same model: the same loss and the same update."""
    s = verify_scenario(SCENARIOS["lstm-4x320bi-ctc"])
    cfg = Config(s, make_batch(s), canonical_weights(s), lr=VERIFY_LR, adam_eps=VERIFY_EPS)
    packed, reversed_ = build("torch-packed", cfg), build("torch-nn", cfg)
    assert packed.notes["kernel"].startswith("native")  # packed input has no oneDNN path
    assert packed.step() == pytest.approx(reversed_.step(), rel=1e-6)
    w0, new_packed, new_reversed = cfg.weights, packed.weights(), reversed_.weights()
    errs = {k: delta_err(w0[k], new_packed[k], new_reversed[k].astype(np.float64)) for k in w0}
    assert max(errs.values()) < 1e-4, errs


def step_and_compare(impl, s, weights_for_impl, batch_for_impl=None):
    cfg = Config(s, batch_for_impl or make_batch(s), weights_for_impl, lr=VERIFY_LR, adam_eps=VERIFY_EPS)
    trainer = build(impl, cfg)
    loss = trainer.step()
    return compare(s, make_batch(s), canonical_weights(s), loss, trainer.weights(), trainer.notes)


def test_verify_catches_swapped_gates():
    s = verify_scenario(SCENARIOS["lstm-1x320-ce"])
    w = canonical_weights(s)
    assert step_and_compare("torch-nn", s, w).ok
    bad = dict(w)
    i, f, g, o = np.split(w["l0.fw.w_ih"], 4)
    bad["l0.fw.w_ih"] = np.concatenate([f, i, g, o])  # a mapping that swaps two gates
    verdict = step_and_compare("torch-nn", s, bad)
    assert not verdict.ok and verdict.loss_err > 1e-4


def test_verify_catches_padding_leaking_into_the_loss():
    s = verify_scenario(SCENARIOS["lstm-4x320bi-ctc"])
    b = make_batch(s)
    assert step_and_compare("torch-nn", s, canonical_weights(s)).ok
    leaky = type(b)(b.x, b.y, np.full_like(b.lengths, s.time_steps))  # ignores the lengths
    assert not step_and_compare("torch-nn", s, canonical_weights(s), leaky).ok


def test_smoke_run_all_torch_ok_and_verified(cli, tmp_path):
    p = cli("run", "--profile", "smoke", "-i", "torch-*", "--out", tmp_path, "--no-report")
    assert p.returncode == 0, p.stdout + p.stderr
    rows = summary(tmp_path)
    assert set(rows) == {(s, i) for s in SEED_SCENARIOS for i in TORCH_IMPLS}
    ran = {key: row for key, row in rows.items() if not skips(key[1], key[0])}
    for key in rows.keys() - ran.keys():
        assert rows[key]["status"] == "skipped" and PACKED_SKIP in rows[key]["reason"], key
    for key, row in ran.items():
        assert row["status"] == "ok", (key, row["reason"])
        assert row["verified"] == "yes", key
        # Not the harness's 1% loop-overhead check: smoke steps last milliseconds, so on a
        # loaded machine one descheduling between steps can exceed it.
        assert "finite" not in row["checks"] and "decreasing" not in row["checks"], (key, row["checks"])
        assert float(row["median_s"]) > 0 and int(row["parameters"]) > 0
        assert row["flush_denormal"] == "on" and row["version"].startswith("torch 2.")
    steps = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(steps) == len(ran) * 4  # 1 warm-up + 3 measured each
    doc = json.loads((tmp_path / "runs" / "lstm-1x320-ce__torch-nn.json").read_text())
    assert doc["meta"]["source_sha256"] and doc["meta"]["versions"]["torch"].startswith("2.")
    assert doc["worker"] == "forked"  # from the smoke profile's fork server, which preloads torch
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["gemm"]["gflops"] > 0 and meta["git"]["revision"] and meta["finished"]


def test_verify_command_passes_for_torch(cli):
    p = cli("verify", "-i", "torch-nn", "-i", "torch-cell")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(" pass ") == 8


def test_ctrl_c_keeps_finished_results(tmp_path):
    cmd = [sys.executable, "-m", "rnnbench.cli", "run", "--profile", "smoke", "-i", "torch-nn",
           "--steps", "3", "-s", "lstm-1x320-ce", "-s", "gru-1x320-ce", "--out", str(tmp_path), "--no-report",
           "--no-verify"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((tmp_path / "runs").glob("*.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err
    rows = summary(tmp_path)
    assert rows[("gru-1x320-ce", "torch-nn")]["status"] == "ok"
    if proc.returncode == 130:
        assert "interrupted" in err
        assert json.loads((tmp_path / "meta.json").read_text())["interrupted"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_smoke(cli, tmp_path):
    p = cli("run", "--profile", "smoke", "-i", "torch-nn", "--device", "cuda", "--out", tmp_path, "--no-report")
    assert p.returncode == 0, p.stderr
    assert all(r["device"] == "cuda" and float(r["peak_gpu_mib"]) > 0 for r in summary(tmp_path).values())


SETUP_CHILD = """
import json, sys, torch
from rnnbench.frameworks import torch_
info = torch_.setup("torch", 1, sys.argv[1] == "1", "cpu")
info["denormal_product"] = (torch.tensor([1e-39]) * 1.0).item()
print(json.dumps(info))
"""


@pytest.mark.parametrize("flush", [True, False])
def test_flush_denormal_setting_takes_effect(flush):
    proc = subprocess.run([sys.executable, "-c", SETUP_CHILD, str(int(flush))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["threads"] == 1 and info["device"] == "cpu"
    if flush:
        assert info["flush_denormal"] == "on" and info["denormal_product"] == 0.0
    else:
        assert info["flush_denormal"] == "off" and info["denormal_product"] > 0
