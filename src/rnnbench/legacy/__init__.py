"""The seed's own 2017 software (Theano 0.9 + Lasagne 0.1, TensorFlow 1.2, Keras 2.0, and
PyTorch 1.0, the oldest PyTorch the package registry has), run beside today's.

That software needs Python 3.6, so these implementations run in their own worker
(``worker.py``, started as ``<legacy python> worker.py JOB`` by rnnbench.launch) under the
interpreter of ``.venv-legacy`` (``make legacy``; ``host.py`` finds it). That worker shares
only rnnbench.protocol (the job and result) and rnnbench.stopping (the step loop and stop
rules) with today's; the runner hands it the batch and the canonical weights as an .npz
file, and everything else (timeouts, logs, statistics, checks, verification) is the same
harness as for every other row.

This file is read by both interpreters (today's registry, rnnbench.impls, takes the
implementations below from it): Python 3.6, standard library only.
"""

import hashlib
import os

# (name, framework, "module:function" in this package, description)
IMPLEMENTATIONS = (
    ("lasagne", "theano", "lasagne_:build",
     "Lasagne 0.1 LSTMLayer / GRULayer on Theano 0.9 scan, mask_input, CTC in scan (2017)"),
    ("keras2-theano", "keras2-theano", "keras2:build", "Keras 2.0.5 LSTM / GRU / Bidirectional, Theano 0.9 backend (2017)"),
    ("keras2-tf1", "keras2-tf1", "keras2:build", "Keras 2.0.5 LSTM / GRU / Bidirectional, TensorFlow 1.2 backend (2017)"),
    ("tf1-cell", "tf1", "tf1:build_cell", "TensorFlow 1.2 tf.contrib.rnn LSTMCell / GRUCell in dynamic_rnn (2017)"),
    ("tf1-blockcell", "tf1", "tf1:build_blockcell",
     "TensorFlow 1.2 tf.contrib.rnn LSTMBlockCell / GRUBlockCell in dynamic_rnn (2017)"),
    ("tf1-blockfused", "tf1", "tf1:build_blockfused", "TensorFlow 1.2 tf.contrib.rnn LSTMBlockFusedCell (2017)"),
    ("torch1-nn", "torch1", "torch1:build_nn", "PyTorch 1.0 nn.LSTM / nn.GRU (Dec 2018: the oldest on the registry)"),
    ("torch1-cell", "torch1", "torch1:build_cell", "PyTorch 1.0 nn.LSTMCell / nn.GRUCell in a Python loop"),
)
# framework: (distributions whose versions a result records, modules that must import)
FRAMEWORKS = {
    "theano": (("Theano", "Lasagne", "numpy"), ("theano", "lasagne")),
    "keras2-theano": (("Keras", "Theano"), ("keras", "theano")),
    "keras2-tf1": (("Keras", "tensorflow"), ("keras", "tensorflow")),
    "tf1": (("tensorflow",), ("tensorflow",)),
    "torch1": (("torch",), ("torch",)),
}
HERE = os.path.dirname(os.path.abspath(__file__))
# What every legacy implementation also runs: its Config and Trainer, and the runtime settings.
COMMON = ("base", "runtime")


def source_hash(impl):
    """16 hex digits of the SHA-256 of the files implementation ``impl`` runs (its module
    and COMMON): what --resume compares, computed alike by both interpreters."""
    target = next(t for name, _, t, _ in IMPLEMENTATIONS if name == impl)
    h = hashlib.sha256()
    for module in sorted(set(COMMON + (target.split(":")[0],))):
        with open(os.path.join(HERE, module + ".py"), "rb") as f:
            h.update(module.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()[:16]
