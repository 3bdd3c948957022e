"""Correctness check of one training step against the float64 reference (framework-free).

``rnnbench verify`` (and ``rnnbench run``) build an implementation on the smoke-size
scenario with ``lr = VERIFY_LR`` and ``adam_eps = VERIFY_EPS``, run ONE step, and hand the
loss and the updated weights (canonical layout) to :func:`compare`, which recomputes the
same step with :func:`rnnbench.reference.train_step` and measures:

* ``loss_err = |loss - ref_loss| / |ref_loss|`` against ``LOSS_RTOL``;
* for every tensor, with ``delta = new - initial`` weights:
  ``max|delta_impl - delta_ref| / max|delta_ref|`` against ``DELTA_RTOL``. The implementation
  reports float32 weights, so each element's difference is first reduced by one float32 ulp
  of the reference's new weight: the rounding of ``initial + delta`` to float32 (half an ulp, and as much
  again where a framework converts its layout back), which even an exact float32
  implementation makes. ``VERIFY_LR`` makes that allowance negligible: at its value one ulp
  of any new weight is under 1% of the tolerance, ``DELTA_RTOL * max|delta_ref|``, for every
  tensor of every scenario (tests/test_reference.py checks this), so the check is as strict
  as it says.

Notes from the implementation choose what it is compared with: ``gru`` (reset-after,
reset-before, or Lasagne's reset-after-bias-outside), ``adam`` (standard or epsilon-hat),
``ctc`` (exact, or Keras 2's Theano keras2-theano) and ``bias``: "single" for frameworks
with one bias vector per gate, loaded as ``b_ih + b_hh`` and trained as the canonical
model with ``b_hh`` frozen.

Checking updated weights instead of gradients keeps implementations simple (they expose
their parameters, not their gradients) and also checks the optimizer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .data import Batch, weight_shapes
from .reference import ADAM_VARIANTS, CTC_VARIANTS, GRU_FORMULATIONS, adam_step, loss_and_grads
from .scenarios import PROFILES, Scenario, apply_profile

# With the default eps (1e-8 or 1e-7) the first Adam step is ~ -lr * sign(g): every
# element moves by lr whatever its gradient, which hides gradient magnitudes (a gradient
# off by a factor 2 would pass). With eps = 1 the update is ~ -lr * g / (|g| + 1) (standard
# variant; -lr * g / (|g| + 31.6) for epsilon-hat), i.e. nearly proportional to the gradient.
# The step is linear in lr, so lr only sets how large the update is against the float32
# resolution of the weights. At lr = 1 the smallest updates (l0.bw.w_hh of the 4-layer
# bidirectional CE network under epsilon-hat, largest element 140 ulps of its weight) made
# one ulp 0.7% of the update, above DELTA_RTOL; at 1024 (a power of two: lr * x is exact)
# one ulp is at most 7e-6 of any tensor's largest update.
VERIFY_LR = 1024.0
VERIFY_EPS = 1.0

# float32 implementations against the float64 reference, at smoke size: the loss agrees to
# ~1e-7 and the updates to ~1e-5 of their scale (epsilon-hat Adam: 7e-6 from beta_2 = 0.999
# in float32, whose 1 - beta_2 is 1.3e-5 off, then square-rooted), so these leave two orders
# of magnitude of headroom while any formulation, gate-order or masking mistake gives errors
# of 1e-2 to 1.
LOSS_RTOL = 1e-4
DELTA_RTOL = 1e-3


def verify_scenario(s: Scenario) -> Scenario:
    """The smoke-size version of a scenario, on which implementations are verified: the
    same cell, layers, directions, loss and classes (a custom network's too), tiny sizes."""
    return apply_profile(dataclasses.replace(s, custom=False), PROFILES["smoke"])


@dataclass
class Verdict:
    ok: bool
    loss_err: float
    param_errs: dict[str, float] = field(default_factory=dict)
    worst: tuple[str, float] = ("", 0.0)
    gru: str = "reset-after"  # GRU formulation the implementation was checked against
    adam: str = "standard"  # Adam variant it was checked against
    loss: float = float("nan")
    ref_loss: float = float("nan")
    message: str = ""


def delta_err(initial, new_impl, new_ref) -> float:
    """max|delta_impl - delta_ref| / max|delta_ref| with delta = new - initial, each
    element's difference first reduced by one float32 ulp of the reference's new weight
    (the float32 rounding of the reported weight, see the module docstring).
    A tensor the reference leaves unchanged must stay exactly unchanged."""
    initial = np.asarray(initial, dtype=np.float64)
    new_impl = np.asarray(new_impl, dtype=np.float64)
    if not np.all(np.isfinite(new_impl)):
        return float("inf")
    d_ref = new_ref - initial
    ulp = np.spacing(np.abs(new_ref).astype(np.float32)).astype(np.float64)
    excess = np.maximum(np.abs((new_impl - initial) - d_ref) - ulp, 0.0)
    worst = excess.max(initial=0.0)
    if worst == 0.0:
        return 0.0
    scale = np.abs(d_ref).max()
    return float(worst / scale) if scale > 0 else float("inf")


def compare(s: Scenario, batch: Batch, weights, loss: float, new_weights, notes=None,
            forward_loss: float | None = None) -> Verdict:
    """Compare an implementation's one-step ``loss`` and ``new_weights`` (canonical names)
    started from ``weights`` with the reference, using the GRU formulation
    ``notes["gru"]`` and Adam variant ``notes["adam"]`` the implementation declares; and
    the loss of its forward step from the same weights (``--mode forward``), if given."""
    notes = notes or {}
    gru = notes.get("gru", "reset-after")
    adam = notes.get("adam", "standard")
    ctc = notes.get("ctc", "exact")
    verdict = Verdict(ok=False, loss_err=float("inf"), gru=gru, adam=adam, loss=float(loss))
    problems = []
    if gru not in GRU_FORMULATIONS:
        problems.append(f"unknown notes['gru'] {gru!r} (expected one of {GRU_FORMULATIONS})")
    if adam not in ADAM_VARIANTS:
        problems.append(f"unknown notes['adam'] {adam!r} (expected one of {ADAM_VARIANTS})")
    if ctc not in CTC_VARIANTS:
        problems.append(f"unknown notes['ctc'] {ctc!r} (expected one of {CTC_VARIANTS})")
    shapes = weight_shapes(s)
    missing = [n for n in shapes if n not in new_weights]
    extra = sorted(set(new_weights) - set(shapes))
    if missing:
        problems.append(f"missing weights: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected weights: {', '.join(extra)}")
    for name, shape in shapes.items():
        if name in new_weights and np.shape(new_weights[name]) != shape:
            problems.append(f"{name}: shape {np.shape(new_weights[name])}, expected {shape}")
    if problems:
        verdict.message = "; ".join(problems)
        return verdict

    ref_loss, grads = loss_and_grads(s, batch, weights, gru=gru, ctc=ctc)
    if notes.get("bias") == "single":
        # One bias vector per gate, loaded as b_ih + b_hh: the canonical model with b_hh
        # frozen (the implementation reports b_hh unchanged and the whole update in b_ih).
        grads = {n: (np.zeros_like(g) if n.endswith(".b_hh") else g) for n, g in grads.items()}
    ref_new = adam_step(weights, grads, lr=VERIFY_LR, eps=VERIFY_EPS, variant=adam)
    verdict.ref_loss = ref_loss
    verdict.loss_err = abs(float(loss) - ref_loss) / abs(ref_loss) if np.isfinite(loss) else float("inf")
    verdict.param_errs = {n: delta_err(weights[n], new_weights[n], ref_new[n]) for n in shapes}
    verdict.worst = max(verdict.param_errs.items(), key=lambda kv: kv[1])

    if not verdict.loss_err <= LOSS_RTOL:
        problems.append(f"loss {float(loss):.7g} vs reference {ref_loss:.7g} "
                        f"(rel err {verdict.loss_err:.2e} > {LOSS_RTOL:g})")
    if forward_loss is not None and not abs(forward_loss - ref_loss) <= LOSS_RTOL * abs(ref_loss):
        problems.append(f"forward step's loss {forward_loss:.7g} vs reference {ref_loss:.7g}")
    bad = [(n, e) for n, e in verdict.param_errs.items() if not e <= DELTA_RTOL]
    if bad:
        listed = ", ".join(f"{n} {e:.2e}" for n, e in sorted(bad, key=lambda kv: -kv[1]))
        problems.append(f"{len(bad)}/{len(shapes)} weight updates differ (> {DELTA_RTOL:g}): {listed}")
    verdict.ok = not problems
    model = ([f"GRU {gru}"] if s.cell == "gru" else []) + [f"Adam {adam}"]
    if s.loss == "ctc" and ctc != "exact":
        model.append(f"CTC {ctc}")
    if notes.get("bias") == "single":
        model.append("one bias per gate")
    if forward_loss is not None:
        model.append("forward step's loss")
    verdict.message = "; ".join(problems) if problems else "reference: " + ", ".join(model)
    return verdict
