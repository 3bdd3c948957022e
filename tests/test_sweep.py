"""Custom networks, sweeps, the scaling report and forward-only timing: parsing and
validation, the fitted cost models on synthetic timings, crossovers, the report's scaling
section from a small results directory, and (smoke size) a sweep, a resumed sweep and a
forward-only run end to end."""

from __future__ import annotations

import csv
import json
import math
from argparse import Namespace
from dataclasses import asdict

import pytest

from rnnbench import cli, flops, network, results, scaling
from rnnbench.network import name_of, parse_network, parse_sweep, points, shape_of
from rnnbench.scenarios import PROFILES, SCENARIOS, Scenario, apply_profile
from rnnbench.schema import META_SCHEMA, RUN_SCHEMA
from rnnbench.verify import verify_scenario
from test_bad_input import one_line, rnnbench  # noqa: F401 (a fixture)

QUICK, SMOKE = PROFILES["quick"], PROFILES["smoke"]


# --- parsing and validation -------------------------------------------------------------------

def test_network_spec():
    s, sizes = parse_network("lstm,layers=2,hidden=512,bi,ctc,batch=64")
    assert (s.cell, s.layers, s.hidden, s.bidirectional, s.loss, s.classes, s.batch) == \
        ("lstm", 2, 512, True, "ctc", 58, 64)
    assert sizes == {"layers": 2, "hidden": 512, "batch": 64}
    gru, _ = parse_network("gru")  # the seed's defaults
    assert (gru.layers, gru.hidden, gru.bidirectional, gru.loss, gru.classes) == (1, 320, False, "ce", 25)


@pytest.mark.parametrize("spec, message", [
    ("rnn,layers=2", "must start with the cell, gru or lstm"),
    ("lstm,depth=2", "unknown key 'depth'"),
    ("lstm,bidir", "unknown part 'bidir'"),
    ("lstm,hidden=0", "hidden must be a whole number >= 1, got 0"),
    ("lstm,hidden=1.5", "hidden must be a whole number >= 1, got '1.5'"),
    ("lstm,layers=2,layers=3", "sets layers twice"),
])
def test_network_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_network(spec)


def test_sweep_spec():
    assert parse_sweep("time-steps=25,50,25") == ("time_steps", [25, 50])
    for text, message in [("classes=2,3", "unknown key 'classes'"), ("batch", "expected KEY=V1,V2"),
                          ("batch=1,-8", "batch must be a whole number >= 1, got -8")]:
        with pytest.raises(ValueError, match=message):
            parse_sweep(text)


def test_points_are_named_by_their_sizes_and_win_over_the_profile():
    base = SCENARIOS["lstm-1x320-ce"]
    pts = points([base], QUICK, {}, [("batch", [1, 256]), ("time_steps", [25, 400])])
    assert [p.name for p in pts] == ["lstm-1x320-ce-b1-t25", "lstm-1x320-ce-b1-t400",
                                     "lstm-1x320-ce-b256-t25", "lstm-1x320-ce-b256-t400"]
    assert all(p.custom and apply_profile(p, QUICK, None) == p for p in pts)  # T=400 is not cut to 100
    assert all(shape_of(p.name) == {k: getattr(p, k) for k in shape_of(p.name)} for p in pts)
    # smoke shrinks what the user did not set, not what they did
    (p,) = points([base], SMOKE, {"hidden": 64}, [])
    assert (p.hidden, p.batch, p.features, p.time_steps, p.name) == (64, 4, 8, 12, "lstm-1x64-ce-b4-t12-f8")
    # two bases that meet at the same shape are one point
    assert len(points([base, SCENARIOS["lstm-1x320-ce-long"]], QUICK, {"batch": 8}, [])) == 1


def test_verification_is_the_smoke_size_of_the_same_shape():
    s, sizes = parse_network("gru,layers=3,hidden=256,bi,ctc,classes=12")
    (p,) = points([s], QUICK, sizes, [])
    v = verify_scenario(p)
    assert (v.cell, v.layers, v.bidirectional, v.loss, v.classes) == ("gru", 3, True, "ctc", 12)
    assert (v.hidden, v.batch, v.time_steps, v.custom) == (8, 4, 12, False)


def test_flops_follow_the_sizes_and_the_mode():
    (small,) = points([SCENARIOS["lstm-1x320-ce"]], QUICK, {"batch": 10}, [])
    (large,) = points([SCENARIOS["lstm-1x320-ce"]], QUICK, {"batch": 20}, [])
    assert flops.step_flops(large, "train") == 2 * flops.step_flops(small, "train")
    assert flops.step_flops(small, "train") == 3 * flops.step_flops(small, "forward")


def test_ctc_point_too_short_for_its_labels():
    s, sizes = parse_network("lstm,ctc")
    with pytest.raises(ValueError, match=r"t4 at 4 time steps: its shortest sequence has 2 step\(s\), too few"):
        points([s], QUICK, sizes, [("time_steps", [50, 4])])


def test_point_limit():
    args = Namespace(scenario=None, network="lstm", sweep=["batch=1,2,3,4", "hidden=8,16,32"], max_points=10,
                     yes=False, time_steps=None)
    with pytest.raises(ValueError, match=r"make 12 points \(scenarios\), more than --max-points 10: add --yes"):
        network.choose(args, [], QUICK)
    args.yes = True
    assert len(network.choose(args, [], QUICK)) == 12


BAD = [
    (["--network", "lstm,widht=3"], "unknown key 'widht'"),
    (["--network", "lstm,layers=0"], "layers must be a whole number >= 1, got 0"),
    (["--network", "lstm,hidden=big"], "hidden must be a whole number >= 1, got 'big'"),
    (["--batch", "0"], "argument --batch: expected a whole number >= 1, got 0"),
    (["--hidden", "2.5"], "argument --hidden: expected a whole number, got '2.5'"),
    (["--sweep", "depth=1,2"], "unknown key 'depth'"),
    (["--sweep", "batch=1,0"], "batch must be a whole number >= 1, got 0"),
    (["--sweep", "batch=1,x"], "batch must be a whole number >= 1, got 'x'"),
    (["--sweep", "batch=1,2", "--batch", "4"], "batch is set twice"),
    (["--network", "lstm,ctc", "--time-steps", "4"], "shortest sequence has 2 step(s), too few for 2 CTC labels"),
    (["--network", "lstm,classes=1"], "classes must be at least 2, got 1"),
    (["--network", "lstm", "-s", "gru-1x320-ce"], "--network describes the scenario, -s picks a named one"),
    (["--sweep", "batch=1,2,3,4,5,6", "--sweep", "hidden=1,2,3,4,5,6,7,8,9"], "54 points (scenarios), more than "
                                                                             "--max-points 50: add --yes"),
    (["--sweep", "batch=1,2,3", "--max-points", "2"], "3 points (scenarios), more than --max-points 2"),
    (["--mode", "backward"], "argument --mode: invalid choice: 'backward'"),
]


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize("args, message", BAD)
def test_bad_custom_input_is_one_line(rnnbench, command, args, message):  # noqa: F811
    chosen = "-s" in args or "--network" in args
    code, out, err = rnnbench(command, *args) if chosen else rnnbench(command, "-s", "lstm-1x320-ce", *args)
    assert message in one_line(code, err) and not out


def test_plan_lists_every_point(capsys, tmp_path):
    code = cli.main(["plan", "-s", "lstm-1x320-ce", "--sweep", "batch=1,256", "--sweep", "time_steps=25,400",
                     "-i", "torch-nn", "--out", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines[2:6]] == [
        "lstm-1x320-ce-b1-t25", "lstm-1x320-ce-b1-t400", "lstm-1x320-ce-b256-t25", "lstm-1x320-ce-b256-t400"]
    assert lines[6].startswith("total: ") and "for 4 runs" in lines[6] and not list(tmp_path.iterdir())


def test_job_says_what_is_timed():
    from rnnbench.protocol import Job, ProtocolError

    job = dict(version="rnnbench.job/2", mode="bench", impl="torch-nn", scenario=asdict(SCENARIOS["gru-1x320-ce"]),
               warmup=0, steps=1, threads=1, flush_denormal=True, device="cpu", verify=None, result="r", progress="p")
    assert Job.from_dict({**job, "timed": "forward"}).timed == "forward" and Job.from_dict(job).timed is None
    with pytest.raises(ProtocolError, match=r"job.timed: 'backward' is not one of train, forward"):
        Job.from_dict({**job, "timed": "backward"})


# --- fitted models and crossovers -------------------------------------------------------------

def sweep_of(key: str, curves: dict) -> scaling.Sweep:
    """A sweep of ``key`` whose implementations' medians are ``curves[impl](x)``."""
    rows = []
    base = SCENARIOS["lstm-1x320-ce"].resized(time_steps=100)
    for impl, (xs, curve) in curves.items():
        for x in xs:
            name = name_of(base.resized(**{key: x}))
            m = curve(x)
            rows.append({"scenario": name, "impl": impl, "median_s": m, "ci_low_s": 0.9 * m, "ci_high_s": 1.1 * m})
    (sw,) = [s for s in scaling.find_sweeps(rows) if s.key == key]
    return sw


def test_time_step_fit_recovers_fixed_and_per_step_cost():
    sw = sweep_of("time_steps", {"torch-nn": ([25, 50, 100, 200, 400], lambda t: 0.004 + 0.0002 * t)})
    f = sw.fit("torch-nn")
    assert f.kind == "linear" and f.a == pytest.approx(0.004) and f.b == pytest.approx(0.0002)
    assert f.r2 == pytest.approx(1.0)


def test_time_step_fit_weighs_every_point_and_never_gives_a_negative_fixed_cost():
    noisy = dict(zip([25, 50, 100, 200, 400], [1.05, 0.95, 1.0, 1.0, 1.0]))  # 5% off at T = 25 and 50
    f = sweep_of("time_steps", {"torch-nn": (list(noisy), lambda t: (0.004 + 0.0002 * t) * noisy[t])}).fit("torch-nn")
    assert f.a == pytest.approx(0.004, rel=0.25) and f.b == pytest.approx(0.0002, rel=0.05)
    # torch-nn's 1x320 LSTM measured here (ms): faster than linear growth, a negative intercept
    measured = dict(zip([25, 50, 100, 200, 400], [15.0, 27.0, 62.5, 119.3, 297.3]))
    f = sweep_of("time_steps", {"torch-nn": (list(measured), lambda t: measured[t] / 1e3)}).fit("torch-nn")
    assert f.a == 0.0 and f.b == pytest.approx(0.000608, rel=0.01)  # refitted through the origin


def test_power_fit_recovers_the_exponent_despite_noise():
    noise = iter([1.02, 0.97, 1.01, 0.99, 1.03, 0.98])
    sw = sweep_of("batch", {"jax-scan": ([1, 4, 16, 64, 128, 256], lambda b: 0.002 * b ** 0.7 * next(noise))})
    f = sw.fit("jax-scan")
    assert f.kind == "power" and f.b == pytest.approx(0.7, abs=0.02) and f.a == pytest.approx(0.002, rel=0.05)
    assert sw.fit("jax-scan") is not None and scaling.fit("batch", [8], [0.1]) is None  # one size: no model


def test_crossover_where_the_fastest_changes():
    sw = sweep_of("batch", {"torch-nn": ([1, 2, 8, 16], lambda b: 1e-3 * b ** 0.3),
                            "jax-scan": ([1, 2, 8, 16], lambda b: 5e-4 * b ** 0.8)})
    assert sw.fastest() == {1: "jax-scan", 2: "jax-scan", 8: "torch-nn", 16: "torch-nn"}
    (c,) = sw.crossovers()
    assert (c.before, c.after, c.low, c.high) == ("jax-scan", "torch-nn", 2, 8) and c.at == pytest.approx(4.0)
    no_change = sweep_of("batch", {"torch-nn": ([1, 8], lambda b: 1e-3), "jax-scan": ([1, 8], lambda b: 2e-3)})
    assert no_change.crossovers() == []


def test_only_custom_points_that_differ_in_one_size_make_a_sweep():
    rows = [{"scenario": s, "impl": "torch-nn", "median_s": 0.1} for s in
            ("lstm-1x320-ce", "lstm-1x320-ce-long", "lstm-1x320-ce-b8-t100", "lstm-2x320-ce-b16-t100")]
    assert scaling.find_sweeps(rows) == []
    rows.append({"scenario": "lstm-1x320-ce-b16-t100", "impl": "torch-nn", "median_s": 0.2})
    assert [(s.key, s.values) for s in scaling.find_sweeps(rows)] == [("batch", [8, 16]), ("layers", [1, 2])]


# --- the report's scaling section ------------------------------------------------------------

def write_sweep_dir(out, timed="train"):
    """A results directory of a batch sweep (as `rnnbench run --sweep batch=1,2,8,16` writes
    it) with synthetic medians: jax-scan 5e-4 * b^0.8, torch-nn 1e-3 * b^0.3 s/step."""
    docs = []
    curves = {"torch-nn": ("torch", lambda b: 1e-3 * b ** 0.3), "jax-scan": ("jax", lambda b: 5e-4 * b ** 0.8)}
    for b in (1, 2, 8, 16):
        s = SCENARIOS["lstm-1x320-ce"].resized(batch=b, time_steps=100)
        for impl, (fw, curve) in curves.items():
            m = curve(b)
            docs.append(dict(schema=RUN_SCHEMA, run_id="fixture-sweep", profile="quick", scenario=name_of(s),
                             impl=impl, framework=fw, status="ok", reason="", median_s=m, ci_low_s=0.95 * m,
                             ci_high_s=1.05 * m, p10_s=m, p90_s=m, mean_s=m, stdev_s=0.0, steps=3, warmup=1,
                             batch=b, time_steps=100, features=123, hidden=320, layers=1, timed=timed,
                             checks="ok", stable=True, verified="yes", threads=2,
                             step_log=[dict(phase="measure", step=k, runtime_s=m, loss=1.0) for k in range(3)]))
    (out / "runs").mkdir(parents=True)
    for d in docs:
        results.write_json(results.run_path(out, d["scenario"], d["impl"]), d)
    results.write_exports(out, docs)
    meta = {"schema": META_SCHEMA, "run_id": "fixture-sweep", "profile": "quick", "started": "2026-11-27T10:00:00",
            "finished": "2026-11-27T10:05:00", "interrupted": False, "timed": timed, "threads": 2,
            "scenarios": list(dict.fromkeys(d["scenario"] for d in docs)), "impls": list(curves)}
    (out / "meta.json").write_text(json.dumps(meta))


def test_report_scaling_section(tmp_path):
    pytest.importorskip("matplotlib")
    from rnnbench.report import write_report

    write_sweep_dir(tmp_path)
    text = write_report(tmp_path).read_text()
    section = text[text.index("## Scaling"):text.index("## Failures")]
    assert "### Batch sweep: lstm-1x320-ce, (B, T, F) = (B, 100, 123)" in section
    assert "![Batch sweep: lstm-1x320-ce, (B, T, F) = (B, 100, 123)](plots/scaling-1.png)" in section
    assert (tmp_path / "plots" / "scaling-1.png").stat().st_size > 10_000
    assert "| torch-nn | 4 | 0.30 |" in section and "| jax-scan | 4 | 0.80 |" in section
    assert "Fastest: jax-scan at batch 1, 2; torch-nn at batch 8, 16." in section
    assert "Crossover: jax-scan -> torch-nn between batch 2 and 8 (the lines cross at about 4)." in section
    html = (tmp_path / "report.html").read_text()
    assert html.count('<section id="scaling">') == 1 and "data:image/png;base64," in html
    assert "Crossover: jax-scan -&gt; torch-nn between batch 2 and 8" in html


def test_forward_report_says_so(tmp_path):
    pytest.importorskip("matplotlib")
    from rnnbench.report import write_report

    write_sweep_dir(tmp_path, timed="forward")
    text = write_report(tmp_path, plots=False).read_text()
    assert "Median wall-clock time per forward pass (the loss only" in text
    assert "the median time per forward pass against one size" in text
    html = (tmp_path / "report.html").read_text()
    assert "per forward pass\n    (the loss only, no backward or update: --mode forward)" in html
    assert "per training step" not in html


# --- forward steps against the reference ------------------------------------------------------

@pytest.mark.parametrize("impl, spec", [("torch-nn", "gru,layers=2,bi,ctc"), ("torch-cell", "lstm,bi,ctc,classes=7"),
                                        ("jax-scan", "lstm,layers=2,bi,ctc"), ("flax-nnx", "gru,layers=2")])
def test_forward_is_the_reference_loss_and_updates_nothing(impl, spec):
    """A custom network built at its verification size: the forward step's loss is the
    float64 reference's, the same every call, and the weights stay as they were."""
    import numpy as np

    from conftest import build_impl
    from rnnbench.data import canonical_weights, make_batch
    from rnnbench.impls.base import Config
    from rnnbench.reference import loss_and_grads
    from rnnbench.verify import LOSS_RTOL

    pytest.importorskip("torch" if impl.startswith("torch") else "flax")
    s = verify_scenario(parse_network(spec)[0])
    w0, batch = canonical_weights(s), make_batch(s)
    trainer = build_impl(impl, Config(s, batch, w0))
    ref, _ = loss_and_grads(s, batch, w0)
    first, second = trainer.forward(), trainer.forward()
    assert abs(first - ref) <= LOSS_RTOL * abs(ref) and first == second
    assert all(np.array_equal(v, w0[k]) for k, v in trainer.weights().items())


def test_verification_catches_a_wrong_forward_loss():
    from rnnbench.data import canonical_weights, make_batch
    from rnnbench.reference import train_step
    from rnnbench.verify import VERIFY_EPS, VERIFY_LR, compare

    s = verify_scenario(SCENARIOS["gru-1x320-ce"])
    w0, batch = canonical_weights(s), make_batch(s)
    loss, _, new = train_step(s, batch, w0, lr=VERIFY_LR, eps=VERIFY_EPS)
    assert compare(s, batch, w0, loss, new, forward_loss=loss).ok
    wrong = compare(s, batch, w0, loss, new, forward_loss=loss * 1.01)
    assert not wrong.ok and wrong.message.startswith("forward step's loss")


# --- end to end, smoke size --------------------------------------------------------------------

def summary(out) -> dict:
    with open(out / "summary.csv", newline="") as f:
        return {(r["scenario"], r["impl"]): r for r in csv.DictReader(f)}


def test_smoke_sweep_end_to_end_and_resumed_per_point(tmp_path):
    out = tmp_path / "sweep"
    common = ["run", "--profile", "smoke", "-s", "lstm-1x320-ce", "--out", str(out), "--no-report"]
    assert cli.main([*common, "-i", "torch-nn", "-i", "jax-scan", "--sweep", "batch=2,3"]) == 0
    rows = summary(out)
    names = ["lstm-1x8-ce-b2-t12-f8", "lstm-1x8-ce-b3-t12-f8"]
    assert set(rows) == {(n, i) for n in names for i in ("torch-nn", "jax-scan")}
    for (name, impl), r in rows.items():
        assert r["status"] == "ok" and r["verified"] == "yes"
        assert (r["batch"], r["timed"], r["layers"]) == ({names[0]: "2", names[1]: "3"}[name], "train", "1")
    with open(out / "results.csv", newline="") as f:
        assert {r["scenario"] for r in csv.DictReader(f)} == set(names)  # every step row names its point
    doc = json.loads((out / "runs" / f"{names[1]}__torch-nn.json").read_text())
    assert doc["shape"]["batch"] == 3 and doc["flops_per_step"] == flops.train_flops(Scenario(**doc["shape"]))
    first = rows[(names[0], "torch-nn")]["run_id"]
    assert cli.main([*common, "-i", "torch-nn", "--sweep", "batch=2,3,5", "--resume"]) == 0
    rows = summary(out)  # the two points done are kept as they were, the new one is run
    assert [rows[(n, "torch-nn")]["run_id"] == first for n in [*names, "lstm-1x8-ce-b5-t12-f8"]] == [True, True, False]
    assert rows[("lstm-1x8-ce-b5-t12-f8", "torch-nn")]["status"] == "ok"


def test_forward_mode_end_to_end(tmp_path, capsys):
    out = tmp_path / "fwd"
    code = cli.main(["run", "--profile", "smoke", "-s", "gru-1x320-ce", "-i", "torch-nn", "-i", "torch-cell",
                     "--mode", "forward", "--out", str(out), "--no-report"])
    assert code == 0
    assert json.loads((out / "meta.json").read_text())["timed"] == "forward"
    for impl in ("torch-nn", "torch-cell"):  # (the JAX and Flax forward steps: against the reference above)
        doc = json.loads((out / "runs" / f"gru-1x320-ce__{impl}.json").read_text())
        assert doc["status"] == "ok" and doc["timed"] == "forward"
        # nothing is updated: "decreasing" does not apply (the overhead check may flag a busy machine)
        assert doc["check_details"]["decreasing"] is None and "decreasing" not in doc["checks"]
        losses = [s["loss"] for s in doc["step_log"]]
        assert max(losses) - min(losses) <= 1e-6 * abs(losses[0])  # no update: the same loss every time
        assert doc["flops_per_step"] == flops.forward_flops(apply_profile(SCENARIOS["gru-1x320-ce"], SMOKE))
        assert doc["verified"] == "yes" and "forward step's loss" in doc["verify_message"]  # both steps checked
    assert all(r["timed"] == "forward" for r in summary(out).values())
    assert not math.isnan(float(summary(out)[("gru-1x320-ce", "torch-nn")]["median_s"]))
    # resumed as training: refused, naming the mode, with the directory untouched
    before = (out / "summary.csv").read_text()
    assert cli.main(["run", "--profile", "smoke", "-s", "gru-1x320-ce", "-i", "torch-nn", "--out", str(out),
                     "--no-report", "--resume"]) == 2
    assert 'timed "forward" -> "train"' in capsys.readouterr().err
    assert (out / "summary.csv").read_text() == before
