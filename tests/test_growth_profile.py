"""scripts/growth_profile.py: the XLA dump reader counts whole-sequence buffers written inside
while-loop bodies only, and a real (tiny) PyTorch run prints the growth and the ops."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import growth_profile  # noqa: E402

HLO = """HloModule train_step

%body.1 (arg: (s32[], f32[7,2,3])) -> (s32[], f32[7,2,3]) {
  %get-tuple-element.1 = f32[7,2,3]{2,1,0} get-tuple-element(%arg), index=1
  %copy.5 = f32[7,2,3]{2,1,0} copy(%get-tuple-element.1)
  %small = f32[2,3]{1,0} fusion(%copy.5), kind=kLoop, calls=%f
  ROOT %tuple = (s32[], f32[7,2,3]) tuple(%i, %copy.5)
}

ENTRY %main (p: f32[7,2,3]) -> f32[7,2,3] {
  %copy.1 = f32[7,2,3]{2,1,0} copy(%p)
  %while.1 = (s32[], f32[7,2,3]) while(%init), condition=%cond.1, body=%body.1
}
"""


def test_counts_whole_sequence_buffers_inside_loop_bodies_only(tmp_path):
    small = tmp_path / "module_0001.small.cpu_after_optimizations.txt"
    small.write_text("HloModule other\n")
    big = tmp_path / "module_0002.train.cpu_after_optimizations.txt"
    big.write_text(HLO)
    counts = growth_profile.hlo_whole_sequence_ops([small, big], 7)
    # the body's get-tuple-element and copy of f32[7,2,3]; not its (2, 3) fusion, not ENTRY's copy
    assert counts == {"get-tuple-element": 1, "copy": 1}
    assert growth_profile.hlo_whole_sequence_ops([], 7) == {}


def test_a_tiny_pytorch_run_prints_the_growth_and_the_ops(capsys):
    pytest.importorskip("torch")
    assert growth_profile.main(["torch-nn", "gru-1x320-ce", "--time-steps", "2", "4", "--steps", "1",
                                "--threads", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "T = 4: median" in out and "for T x2" in out, out
    assert out.count("ms/step self") == 6, out  # the top 3 ops at each T
