"""Print text sampled from a trained GPT or recurrent language model.

  python -m tools.generate --workdir=runs/sc_gpt_cpu --prompt="ROMEO:" --max_new_tokens=500 \
      --temperature=0.8 --top_k=200 [--top_p=0.9] [--seed=0] [--num_samples=1]

Same workdir, prompt, settings and seed -> the same text.
"""

from absl import flags

from research.apps import cli
from research.apps.cli import quiet_logs
from research.apps.generate import generate_text

_WORKDIR = flags.DEFINE_string("workdir", None, "A language-model workdir written by tools.train.")
_PROMPT = flags.DEFINE_string("prompt", "\n", "Text to continue.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 500, "Tokens to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax temperature (> 0).")
_TOP_K = flags.DEFINE_integer("top_k", None, "Keep only the k most likely tokens.")
_TOP_P = flags.DEFINE_float("top_p", None, "Nucleus sampling: smallest set with mass >= p.")
_GREEDY = flags.DEFINE_boolean("greedy", False, "Argmax decoding (ignores sampling settings).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_NUM = flags.DEFINE_integer("num_samples", 1, "Independent samples.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  quiet_logs()
  texts = generate_text(
    _WORKDIR.value,
    _PROMPT.value,
    max_new_tokens=_MAX_NEW.value,
    temperature=_TEMPERATURE.value,
    top_k=_TOP_K.value,
    top_p=_TOP_P.value,
    greedy=_GREEDY.value,
    seed=_SEED.value,
    num_samples=_NUM.value,
    checkpoint=_CHECKPOINT.value,
  )
  for i, text in enumerate(texts):
    if len(texts) > 1:
      print(f"--- sample {i} ---")
    print(text)


if __name__ == "__main__":
  cli.run(main)
