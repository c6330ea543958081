"""A results page generated from finished runs.

  python -m tools.results --workdirs='runs/digits_*,runs/m1d_cnn' --output=docs/results/vision.md

One row per run and published reference of its data: value, published value
and source, delta, verdict, the checkpoint the numbers are of, train time,
devices, precision/mesh and the git commit (research.outputs.results_page).
Rerunning keeps whatever an existing page has after its KEEP_MARKER line.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import flags

from research.apps import cli
from research.outputs import results_page

_WORKDIRS = flags.DEFINE_list(
  "workdirs", None, "Finished tools.train workdirs or globs ('runs/credit_*'), in row order."
)
_OUTPUT = flags.DEFINE_string("output", None, "Write the page here (else print it only).")
_TITLE = flags.DEFINE_string(
  "title", None, "Page title. Default: 'Results: <domain of the first run>'."
)
_METRICS = flags.DEFINE_list(
  "metrics",
  [],
  "Also show these metrics of every run that has them ('test/ndcg@10'), beside "
  "those its published references name.",
)
_NOTE = flags.DEFINE_string(
  "note", "", "A paragraph under the header (e.g. what code made the runs and why)."
)
flags.mark_flag_as_required("workdirs")


def main(argv):
  del argv
  workdirs = results_page.expand(_WORKDIRS.value)
  title = _TITLE.value
  if title is None:
    experiment = results_page.rows(workdirs[:1])[0]["experiment"]
    title = f"Results: {experiment.split('/')[0]}"
  # The note is printed under the command already; the command shows its flag only.
  args = ["--note=..." if a.startswith("--note=") else a for a in sys.argv[1:]]
  command = shlex.join(["python", "-m", "tools.results", *args])
  text = results_page.page(
    workdirs, title=title, command=command, note=_NOTE.value, metrics=_METRICS.value
  )
  if _OUTPUT.value:
    from research.outputs import writer

    tail = results_page.kept_tail(_OUTPUT.value)
    if os.path.dirname(_OUTPUT.value):
      os.makedirs(os.path.dirname(_OUTPUT.value), exist_ok=True)
    writer.atomic_write(_OUTPUT.value, text + ("\n" + tail if tail else ""))
  print(text, end="")


if __name__ == "__main__":
  cli.run(main)
