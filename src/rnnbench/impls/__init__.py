"""Registry of implementations: name -> framework and ``module:function``.

Nothing here imports a framework: modules are imported by name in the worker process.
Adding a framework = one module in this package + registry lines + an optional
dependency group in pyproject.toml.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import legacy
from ..frameworks import FAMILY_SHADES, FRAMEWORKS


@dataclass(frozen=True)
class Impl:
    name: str
    framework: str
    target: str  # "module:function" that builds a Trainer
    description: str

    @property
    def script(self) -> str:
        """The training script, as a path in the repository (src/rnnbench/impls/x.py)."""
        return "src/" + self.target.split(":")[0].replace(".", "/") + ".py"


_P = "rnnbench.impls."
IMPLEMENTATIONS: dict[str, Impl] = {
    i.name: i
    for i in [
        Impl("torch-nn", "torch", _P + "torch_nn:build", "nn.GRU / nn.LSTM (cuDNN on GPU, oneDNN on CPU)"),
        Impl("torch-packed", "torch", _P + "torch_packed:build", "pack_padded_sequence into one nn.LSTM / nn.GRU stack (CTC only)"),
        Impl("torch-cell", "torch", _P + "torch_cell:build", "nn.GRUCell / nn.LSTMCell in a Python loop"),
        Impl("torch-custom", "torch", _P + "torch_custom:build", "hand-written cell from Linear layers"),
        Impl("torch-compile", "torch", _P + "torch_compile:build", "hand-written cell under torch.compile"),
        Impl("tf-cell", "tensorflow", _P + "tf_cell:build", "cell math in tf.scan inside tf.function"),
        Impl("tf-blockcell", "tensorflow", _P + "tf_blockcell:build", "tf.raw_ops.LSTMBlockCell / GRUBlockCell per step"),
        Impl("tf-blockfused", "tensorflow", _P + "tf_blockfused:build", "tf.raw_ops.BlockLSTMV2, whole sequence in one op"),
        Impl("tf-xla", "tensorflow", _P + "tf_xla:build", "tf-cell's model, train step compiled by XLA (jit_compile=True)"),
        Impl("tf-cudnn", "tensorflow", _P + "tf_cudnn:build", "tf.raw_ops.CudnnRNNV3 (GPU only)"),
        Impl("keras-tensorflow", "keras-tensorflow", _P + "keras_layers:build", "Keras 3 layers, TensorFlow backend"),
        Impl("keras-jax", "keras-jax", _P + "keras_layers:build", "Keras 3 layers, JAX backend"),
        Impl("keras-torch", "keras-torch", _P + "keras_layers:build", "Keras 3 layers, PyTorch backend"),
        Impl("flax-nnx", "jax", _P + "flax_nnx:build", "Flax NNX nnx.RNN over OptimizedLSTMCell / GRUCell"),
        Impl("jax-scan", "jax", _P + "jax_scan:build", "hand-written jax.lax.scan, input projection hoisted"),
        Impl("pytensor-scan", "pytensor", _P + "pytensor_scan:build", "PyTensor scan, Lasagne style, numba backend"),
        Impl("pytensor-jax", "pytensor-jax", _P + "pytensor_scan:build_jax", "the pytensor-scan graph on PyTensor's JAX backend"),
        # The 2017 stack, run by its own worker under Python 3.6 (rnnbench.legacy).
        *(Impl(n, fw, "rnnbench.legacy." + target, d) for n, fw, target, d in legacy.IMPLEMENTATIONS),
    ]
}


def framework_available(framework: str) -> bool:
    return FRAMEWORKS[framework].installed


def framework_versions(framework: str) -> dict[str, str]:
    return FRAMEWORKS[framework].versions()


def colour(impl: str) -> str:
    """The implementation's colour: its family's hue, its own shade (same everywhere)."""
    family = FRAMEWORKS[IMPLEMENTATIONS[impl].framework].family if impl in IMPLEMENTATIONS else None
    if family is None:
        return "#7f7f7f"
    siblings = [i for i in IMPLEMENTATIONS.values() if FRAMEWORKS[i.framework].family == family]
    shades = FAMILY_SHADES[family]
    return shades[[i.name for i in siblings].index(impl) % len(shades)]


def family_colour(framework: str) -> str:
    """A framework's colour where one colour stands for all its implementations."""
    fw = FRAMEWORKS.get(framework)
    return FAMILY_SHADES[fw.family][1] if fw else "#7f7f7f"
