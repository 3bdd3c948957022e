"""What a fork server imports (rnnbench.launch.preload): the framework's modules, and for
keras-torch Keras too, but only where the workers' device is sure to be the CPU (Keras' torch
backend fixes its device at import)."""

import dataclasses

import pytest

from rnnbench import launch
from rnnbench.frameworks import FRAMEWORKS
from rnnbench.launch import Launcher, cpu_certain, preload


def test_only_a_sure_cpu_device_preloads_what_fixes_a_device(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "GPU_NODES", (str(tmp_path / "nvidiactl"),))
    assert cpu_certain("cpu") and cpu_certain("auto") and not cpu_certain("cuda")
    (tmp_path / "nvidiactl").touch()  # a GPU the frameworks may pick under "auto"
    assert cpu_certain("cpu") and not cpu_certain("auto") and not cpu_certain("cuda")

    assert "keras" in preload("keras-torch", cpu=True)
    assert "keras" not in preload("keras-torch") and preload("keras-torch")  # torch, still
    assert preload("torch", cpu=True) == preload("torch")  # nothing of torch's fixes a device
    # A framework with no server gets none for its CPU-only modules alone.
    monkeypatch.setitem(FRAMEWORKS, "pytensor", dataclasses.replace(FRAMEWORKS["pytensor"], cpu_preload=("json",)))
    assert preload("pytensor", cpu=True) == ()


@pytest.mark.parametrize("device, keras", [("cpu", True), ("cuda", False)])
def test_keras_torch_server_imports_keras_on_the_cpu_only(monkeypatch, device, keras):
    started = []

    class Server:
        def __init__(self, modules, env):
            started.append((modules, env))

    monkeypatch.setattr(launch, "ForkServer", Server)
    launcher = Launcher(True, device)
    env = {"PATH": "/bin"}  # the same for both, as the runner passes it
    launcher._server("keras-torch", env)
    launcher._server("torch", env)
    assert env == {"PATH": "/bin"}
    (modules, env), (torch_modules, torch_env) = started
    assert ("keras" in modules) is keras
    assert env.get("KERAS_TORCH_DEVICE") == ("cpu" if keras else None)
    assert env.get("KERAS_BACKEND") == ("torch" if keras else None)
    assert "keras" not in torch_modules and "KERAS_TORCH_DEVICE" not in torch_env
