"""Score new applicants with a trained tabular run (its preprocessing and best checkpoint).

  python -m tools.score --workdir=runs/credit_mlp --input=applicants.csv --output=scores.csv

The input needs every feature column of the run's schema (the target may be
absent); numeric columns must hold numbers (empty = missing). A mismatch is
refused with an error naming the column and the CSV line; no row is dropped.
Each output row says which columns were missing and filled (`imputed_columns`)
and which held a category unseen in training (`unknown_categories`); a count
of both is printed.
"""

from absl import app, flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.platforms import xla_flags

xla_flags.apply()

_WORKDIR = flags.DEFINE_string("workdir", None, "A tabular workdir written by tools.train.")
_INPUT = flags.DEFINE_string("input", None, "CSV or Parquet file of rows to score.")
_OUTPUT = flags.DEFINE_string("output", None, "CSV file to write the scores to.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step number.")
_KEEP = flags.DEFINE_list("keep_columns", [], "Input columns copied to the output (e.g. an id).")
flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
  quiet_logs()
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from research.apps import score
  from research.data.tabular import SchemaError

  try:
    result = score.score_csv(
      _WORKDIR.value,
      _INPUT.value,
      _OUTPUT.value,
      checkpoint=_CHECKPOINT.value,
      keep_columns=_KEEP.value,
    )
  except SchemaError as e:
    raise SystemExit(f"Refused: {e}") from None
  print(f"Scored {len(result)} rows -> {_OUTPUT.value}")
  for line in score.flag_summary(result):
    print(f"Note: {line}")


if __name__ == "__main__":
  cli.run(main)
