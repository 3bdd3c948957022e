"""Why keras2-tf1 fails verification in some runs: a race in Keras 2.0.5's TensorFlow backend.

    python scripts/keras2_tf1_race.py [--tries 60] [--scenario lstm-1x320-ce]

Keras 2.0.5's ``Adam.get_updates`` creates each weight's ``tf.assign`` as soon as it has
built that weight's new value: the assignment waits for that weight's own gradient, not
for the other gradients. TensorFlow 1's variables are references, read when the op that
uses them runs, so the backward pass may read a weight (the head's kernel, on the way to
the recurrent layer's gradients) after its assignment ran: the recurrent layers are then
updated with the gradient of another model, in some runs and not others.

The script runs the verification step of keras2-tf1 (smoke size, the verification's lr
and epsilon, a fresh graph and session each time) ``--tries`` times as shipped and as
many times with every assignment made to wait for every gradient (``plain`` and
``ordered``), in the legacy interpreter (rnnbench.legacy.host finds it: make legacy),
and compares every try with the float64 reference as ``rnnbench verify`` does.
The two halves run in their own interpreters; this file is read by both (Python 3.6).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def legacy_half(folder, kind, tries):
    """Python 3.6: ``tries`` verification steps, the weights of each in FOLDER/KIND-N.npz."""
    sys.path.insert(0, SRC)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import keras
    import tensorflow as tf
    from keras import backend as K

    from rnnbench.legacy import keras2
    from rnnbench.legacy.base import Scenario
    from rnnbench.legacy.worker import config

    if kind == "ordered":
        gradients = []
        shipped = keras.optimizers.Adam.get_updates

        def get_updates(self, params, constraints, loss):
            gradients[:] = self.get_gradients(loss, params)
            self.get_gradients = lambda loss, params: list(gradients)  # the same tensors
            return shipped(self, params, constraints, loss)

        def after_gradients(assign):
            def wrapped(x, new):
                with tf.control_dependencies(gradients):
                    return assign(x, new)
            return wrapped

        keras.optimizers.Adam.get_updates = get_updates
        for name in ("update", "update_add"):  # Adam's assignments (and its step counter's)
            setattr(keras.optimizers.K, name, after_gradients(getattr(K, name)))

    inputs = np.load(os.path.join(folder, "inputs.npz"))
    with open(os.path.join(folder, "job.json")) as f:
        job = json.load(f)
    scenario = dict((k, job["scenario"][k]) for k in Scenario._fields)
    for n in range(tries):
        trainer = keras2.build(config(inputs, "verify", scenario, job["threads"], job["lr"], job["adam_eps"]))
        loss = trainer.step()
        np.savez(os.path.join(folder, "{}-{}.npz".format(kind, n)), loss=loss, notes=json.dumps(trainer.notes),
                 **trainer.weights())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=60, help="verification steps per kind (default 60)")
    parser.add_argument("--scenario", default="lstm-1x320-ce", help="a scenario (its smoke size is used)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--legacy-half", nargs=3, metavar=("FOLDER", "KIND", "TRIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.legacy_half:
        folder, kind, tries = args.legacy_half
        return legacy_half(folder, kind, int(tries))

    import dataclasses
    from types import SimpleNamespace

    import numpy as np

    from rnnbench.data import canonical_weights, make_batch
    from rnnbench.legacy import host
    from rnnbench.scenarios import SCENARIOS
    from rnnbench.verify import VERIFY_EPS, VERIFY_LR, compare, verify_scenario

    s = verify_scenario(SCENARIOS[args.scenario])
    batch, weights = make_batch(s), canonical_weights(s)
    with tempfile.TemporaryDirectory() as folder:
        # the batch and weights as the runner hands them to a legacy worker's verification
        host.write_inputs(SimpleNamespace(scenario=None, verify={"scenario": dataclasses.asdict(s)}),
                          Path(folder, "inputs.npz"))
        with open(os.path.join(folder, "job.json"), "w") as f:
            json.dump({"scenario": dataclasses.asdict(s), "threads": args.threads, "lr": VERIFY_LR,
                       "adam_eps": VERIFY_EPS}, f)
        for kind in ("plain", "ordered"):
            interpreter, _, env = host.command("", dict(os.environ))
            subprocess.run([interpreter, os.path.abspath(__file__), "--legacy-half", folder, kind, str(args.tries)],
                           env=env, check=True, stderr=subprocess.DEVNULL)
            failures = []
            for n in range(args.tries):
                out = np.load(os.path.join(folder, f"{kind}-{n}.npz"))
                new = {k: out[k] for k in out.files if k not in ("loss", "notes")}
                v = compare(s, batch, weights, float(out["loss"]), new, json.loads(str(out["notes"])))
                if not v.ok:
                    failures.append(f"  try {n}: {v.message}")
            print(f"{kind}: {args.tries - len(failures)} of {args.tries} tries pass verification")
            print("\n".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
