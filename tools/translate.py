"""Translate (or summarize) a text file, one input per line, with a trained workdir.

  python -m tools.translate --workdir=runs/m30k --input=sentences.en [--output=out.de] \
      [--method=beam --beam_size=4 --alpha=0.6] [--checkpoint=best]

Decoding settings default to the run's own test evaluation. Lines go to
--output (or standard output) in input order.
"""

from absl import flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.apps.translate import translate_texts

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "An encoder-decoder workdir written by tools.train."
)
_INPUT = flags.DEFINE_string("input", None, "Text file, one source per line.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the outputs (default: stdout).")
_METHOD = flags.DEFINE_enum("method", None, ["beam", "greedy"], "Decoding (default: the run's).")
_BEAM = flags.DEFINE_integer("beam_size", None, "Beam width (default: the run's).")
_ALPHA = flags.DEFINE_float("alpha", None, "Length-penalty exponent (default: the run's).")
_MAX_LEN = flags.DEFINE_integer("max_decode_len", None, "Tokens per output (default: the run's).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sentences decoded at once.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step.")
flags.mark_flags_as_required(["workdir", "input"])


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f"Unexpected arguments: {argv[1:]}")
  quiet_logs()
  with open(_INPUT.value, encoding="utf-8") as f:
    texts = [line.rstrip("\n") for line in f]
  outputs = translate_texts(
    _WORKDIR.value,
    texts,
    method=_METHOD.value,
    beam_size=_BEAM.value,
    alpha=_ALPHA.value,
    max_decode_len=_MAX_LEN.value,
    batch_size=_BATCH.value,
    checkpoint=_CHECKPOINT.value,
  )
  text = "\n".join(outputs) + "\n"
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w", encoding="utf-8") as f:
      f.write(text)
  else:
    print(text, end="")


if __name__ == "__main__":
  cli.run(main)
