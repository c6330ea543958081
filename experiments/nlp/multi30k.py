"""Multi30k task 1, English -> German translation (Elliott et al. 2016).

Data: the raw (cased, untokenised) task-1 files in `$RESEARCH_DATA_DIR/multi30k/`
(train 29,000 / val 1,014 / test_2016_flickr 1,000 / test_2017_flickr 1,000).
Tokenizer: one joint SentencePiece BPE vocabulary trained on the training
split's English and German sides only.
Model: the encoder-decoder Transformer (`seq2seq`, tied embeddings, pre-LN),
trained with label smoothing 0.1.

  python -m tools.train --config=experiments/nlp/multi30k.py:transformer_cpu --workdir=runs/m30k
  python -m tools.translate --workdir=runs/m30k --input=sentences.en

Checkpoints are chosen by BLEU on val (greedy decoding during training, cheap);
the test sets are decoded once, at the end, with beam search (beam 4, length
penalty alpha 0.6). Scores are sacreBLEU corpus BLEU and chrF of the
detokenised output against the raw references (signature in the report).
"""

from experiments.nlp import _seq2seq
from research.core.config import ConfigDict, base_config, eval_config, parse_arg

VARIANTS = {
  # Sized for an hour on a 2-core CPU: 3+3 layers, width 256 (about 7.5M
  # parameters), 11 epochs (2,500 steps; docs/nlp.md has the timings).
  "transformer_cpu": dict(
    layers=3, dim=256, heads=4, mlp=1024, batch=128, epochs=11, lr=1e-3, warmup=400
  ),
  # Transformer-base-like for one GPU (bfloat16 on accelerators).
  "transformer_gpu": dict(
    layers=6, dim=512, heads=8, mlp=2048, batch=256, epochs=40, lr=7e-4, warmup=2000
  ),
}
MAX_LEN = 32  # tokens per side (EOS included); 0.5% of English, 1% of German training sentences are longer and cut

# Published text-only Transformer on Multi30k En->De test2016 (see docs/nlp.md).
REFERENCE = dict(
  metric="test_2016/bleu",
  value=38.0,
  higher_is_better=True,
  tolerance=0.0,
  source="text-only Transformer baselines in multimodal MT papers, Multi30k En-De test2016: "
  "about 38 BLEU (round figure; the exact paper row is not verified here, see docs/nlp.md)",
  data=dict(name="multi30k"),
)


def get_config(arg=None):
  arg = parse_arg(arg, variants=tuple(VARIANTS), smoke=False, source="en", target="de")
  v = VARIANTS[arg.variant]
  c = base_config()
  c.data.name = "multi30k"
  c.data.options = ConfigDict(dict(source_lang=arg.source, target_lang=arg.target))
  c.data.tokenizer = ConfigDict(dict(type="sentencepiece", vocab_size=8000, model_type="bpe"))
  _seq2seq.configure(c, v, source_len=MAX_LEN, target_len=MAX_LEN)
  every = 500
  decode = dict(max_decode_len=MAX_LEN)
  c.evals.val = eval_config(
    "decoded_text", "validation", every_steps=every, method="greedy", topk=(), **decode
  )
  c.evals.val_loss = eval_config(
    "language_model",
    "validation",
    every_steps=every,
    topk=(),
    target_key="targets",
    weight_key="targets_mask",
  )
  beam = dict(method="beam", beam_size=4, alpha=0.6, topk=(), **decode)
  c.evals.test_2016 = eval_config("decoded_text", "test_2016_flickr", **beam)
  c.evals.test_2017 = eval_config("decoded_text", "test_2017_flickr", **beam)
  c.ckpt.every_steps, c.ckpt.every_epochs = every, None
  c.ckpt.best_metric, c.ckpt.best_mode = "val/bleu", "max"
  c.references = (REFERENCE,) if (arg.source, arg.target) == ("en", "de") else ()
  if arg.smoke:
    _seq2seq.shrink(
      c, vocab_size=200
    )  # real data needs > 105 (its characters); tiny test data < 239
  return c
