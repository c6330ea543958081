"""A checkpoint written on several devices is read by tools running on one.

tools.generate, tools.score, tools.recommend and init_from read another run's
checkpoint with `Checkpointer.restore_raw`; gpt_cpu trains on 2 host devices,
those tools run on 1. Orbax refuses that topology change unless the restore
target names the shardings, so each step runs in its own process with its own
device count.
"""

import os
import subprocess
import sys

import numpy as np

_SAVE = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from research.train.checkpoint import Checkpointer
assert jax.device_count() == 2
replicated = NamedSharding(Mesh(np.asarray(jax.devices()), ("data",)), P())
state = {{"params": {{"w": jnp.arange(6.0).reshape(2, 3)}}, "step": jnp.asarray(7)}}
state = jax.device_put(state, replicated)
ckpt = Checkpointer({path!r})
ckpt.save(7, state, data_state=None, meta={{}})
ckpt.close()
"""

_READ = """
import jax, numpy as np
from research.train.checkpoint import Checkpointer
assert jax.device_count() == 1
raw = Checkpointer({path!r}).restore_raw(7)
w = raw["params"]["w"]
assert w.sharding.device_set == {{jax.devices()[0]}}
np.save({out!r}, np.asarray(w))
print(int(raw["step"]))
"""


def _python(code: str, devices: int) -> str:
  env = dict(
    os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
  )
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout


def test_restore_raw_reads_a_two_device_checkpoint_on_one_device(tmp_path):
  path = str(tmp_path / "checkpoints")
  _python(_SAVE.format(path=path), devices=2)
  out = str(tmp_path / "w.npy")
  assert _python(_READ.format(path=path, out=out), devices=1).split()[-1] == "7"
  np.testing.assert_array_equal(np.load(out), np.arange(6.0).reshape(2, 3))
