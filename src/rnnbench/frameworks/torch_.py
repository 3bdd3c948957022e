"""PyTorch runtime settings (torch-* and, through rnnbench.frameworks.keras_, keras-torch)."""

import torch

adam_eps = 1e-8  # torch.optim.Adam's default


def setup(framework: str, threads: int, flush_denormal: bool, device: str) -> dict:
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    # Without this torch-nn's lstm-4x320bi-ce step at T = 1000 took 119 s instead of 10.4 s
    # on an Intel Xeon: denormals are slow on many x86 CPUs.
    ftz = torch.set_flush_denormal(flush_denormal)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA GPU")
        torch.backends.cudnn.benchmark = True
        # Full float32 math, as on the CPU and in every other framework here: cuDNN may use
        # TF32 by default (10-bit mantissa), which changes the numbers, not only the speed.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        name = torch.cuda.get_device_name()
        extra = {"cuda": torch.version.cuda, "cudnn": str(torch.backends.cudnn.version()),
                 "float32_math": "full (TF32 off in cuDNN and matmul)"}
    else:
        name, extra = "cpu", {}
    return {
        "device": device,
        "device_name": name,
        "threads": torch.get_num_threads(),
        "flush_denormal": "on" if flush_denormal and ftz else "off",
        **extra,
    }


def gpu_peak_mb():
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_allocated() / 2**20
