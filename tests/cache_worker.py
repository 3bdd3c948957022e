"""fake_worker.py's ``ok`` that compiles into the cache as PyTensor or torch.compile do:
``cache_worker.py TAG JOB`` writes ``$RNNBENCH_CACHE_DIR/compiled/<scenario>-<TAG>.bin``
unless a run before it left that file there (a warm cache), then hands back fake_worker's
step records. A new TAG is a new part of the same run's compiles."""

import os
import runpy
import sys
from pathlib import Path

from rnnbench.protocol import Job

tag, job = sys.argv[1], sys.argv[2]
compiled = Path(os.environ["RNNBENCH_CACHE_DIR"], "compiled", f"{Job.load(job).sizes()['name']}-{tag}.bin")
if not compiled.exists():
    compiled.parent.mkdir(parents=True, exist_ok=True)
    compiled.write_bytes(b"\0" * 1000)
fake = str(Path(__file__).with_name("fake_worker.py"))
sys.argv = [fake, "ok", job]
runpy.run_path(fake, run_name="__main__")
