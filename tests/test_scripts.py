"""Every PyTorch and TensorFlow implementation reads as a training script: its own file
builds the optimizer, defines the loss and holds the train step, and the shared helper
modules hold no training code (only weight-layout conversion and the batch as tensors)."""

import ast
import importlib.util
from pathlib import Path

import pytest

from rnnbench.impls import IMPLEMENTATIONS

IMPLS = Path(importlib.util.find_spec("rnnbench.impls").origin).parent
TRAIN_STEP = {
    "torch": {"torch.optim.Adam", "optimizer.zero_grad", "loss.backward", "optimizer.step"},
    "tensorflow": {"tf.keras.optimizers.Adam", "tf.GradientTape", "tape.gradient", "optimizer.apply_gradients"},
}
LOSSES = {"F.cross_entropy", "F.ctc_loss", "tf.nn.sparse_softmax_cross_entropy_with_logits", "tf.nn.ctc_loss"}


def calls(path: Path) -> set[str]:
    """Dotted names of everything the module calls (``optimizer.step``, ``tf.GradientTape``)."""
    def dotted(node):
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and (base := dotted(node.value)):
            return f"{base}.{node.attr}"
        return None

    tree = ast.parse(path.read_text())
    return {name for node in ast.walk(tree) if isinstance(node, ast.Call) and (name := dotted(node.func))}


def script(impl: str) -> Path:
    return IMPLS / (IMPLEMENTATIONS[impl].target.split(":")[0].rsplit(".", 1)[1] + ".py")


@pytest.mark.parametrize("impl", [n for n, i in IMPLEMENTATIONS.items() if i.framework in TRAIN_STEP])
def test_script_holds_its_optimizer_loss_and_train_step(impl):
    called = calls(script(impl))
    assert TRAIN_STEP[IMPLEMENTATIONS[impl].framework] <= called, f"{impl}: no train step in {script(impl).name}"
    assert called & LOSSES, f"{impl}: no loss in {script(impl).name}"


@pytest.mark.parametrize("helper", ["torch_common.py", "tf_common.py"])
def test_shared_helpers_hold_no_training_code(helper):
    called = calls(IMPLS / helper)
    training = set().union(*TRAIN_STEP.values(), LOSSES)
    assert not called & training
    assert not {c for c in called if "optim" in c or "backward" in c or "Tape" in c}
