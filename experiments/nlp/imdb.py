"""IMDb movie-review sentiment (25k train / 25k test reviews, pos/neg).

Data: `$RESEARCH_DATA_DIR/imdb_reviews/` (the original aclImdb layout as a
folder or .tar.gz, read without unpacking), else TFDS `imdb_reviews`
(whose 'unsupervised' split MLM pretraining also uses when present).
Tokenizer: SentencePiece (unigram, 8k pieces) trained on the training reviews
only; BERT fine-tuning reuses the pretraining run's tokenizer.

  python -m tools.train --config=experiments/nlp/imdb.py:transformer --workdir=runs/imdb_tf
  python -m tools.train --config=experiments/nlp/imdb.py:bert_pretrain --workdir=runs/imdb_bert_pt
  python -m tools.train --config=experiments/nlp/imdb.py:bert_finetune,pretrained=runs/imdb_bert_pt \
      --workdir=runs/imdb_bert_ft

The checkpoint is chosen on a validation split of 2,500 training reviews
(stratified, seeded; the tokenizer and the models never see them); reported on
the full 25k test split: accuracy, precision/recall/F1 (per class and macro;
'pos' is the positive class), ROC AUC and the confusion matrix.
"""

from research.core import smoke
from research.core.config import (
  ConfigDict,
  base_config,
  eval_config,
  parse_arg,
  select_on_validation,
)

_BERT = dict(
  num_layers=2, num_heads=4, embed_dim=128, mlp_dim=512, dropout=0.1, attention_dropout=0.1
)
VARIANTS = ("transformer", "bilstm", "bert_pretrain", "bert_finetune")


def get_config(arg=None):
  arg = parse_arg(
    arg, variants=VARIANTS, smoke=False, pretrained="runs/imdb_bert_pretrain", max_len=256
  )
  c = base_config()
  c.data.name = "imdb_reviews"
  c.data.tokenizer = ConfigDict(dict(type="sentencepiece", vocab_size=8000, model_type="unigram"))
  length = arg.max_len if arg.variant in ("transformer", "bilstm") else min(arg.max_len, 128)
  if arg.variant in ("transformer", "bilstm"):
    # Keras' pad_sequences (the reference's) keeps a review's last tokens,
    # where its verdict usually is; no cls token (these models pool/read all).
    classify = f"tokenize()|truncate_pad({length}, keep='last')|keep('tokens', 'label')"
  else:
    classify = (
      f"tokenize(add_cls=True, add_eos=True)|truncate_pad({length})|keep('tokens', 'label')"
    )
  c.data.pp_train = c.data.pp_eval = classify
  c.task = ConfigDict(
    dict(
      name="classification",
      num_classes=2,
      input_key="tokens",
      label_key="label",
      label_smoothing=0.0,
    )
  )
  c.eval_batch_size = 500
  c.optimizer.name = "adamw"
  c.optimizer.weight_decay = 0.01
  c.schedule.name = "cosine"
  c.log_every_steps = 50
  # 2,500 of the 25,000 training reviews held out (stratified) as validation,
  # evaluated with every checkpoint; the 25k test reviews once, at the end.
  c.evals.test = eval_config("classification", "test", topk=(), every_steps=500)
  c.ckpt.every_steps, c.ckpt.every_epochs = 500, None
  select_on_validation(c, "accuracy")
  # 10 steps per compiled call (research.train.loop._steps_this_call), same
  # updates as single steps; faster on CPU for every variant here
  # (docs/performance_cpu.md, "Steps per call").
  c.steps_per_call = 10
  if arg.variant == "transformer":
    # The Keras example "Text classification with Transformer": embed 32,
    # 2 heads, feed-forward 32, average pooling, dense 20, 2 epochs, batch 32.
    c.precision = "auto"  # bfloat16 compute on GPU/TPU, float32 on CPU
    c.model = ConfigDict(
      dict(
        name="transformer_classifier",
        vocab_size=None,
        num_classes=2,
        max_len=length,
        embed_dim=32,
        num_heads=2,
        mlp_dim=32,
        num_layers=1,
        hidden=20,
        dropout=0.1,
      )
    )
    c.batch_size, c.total_epochs = 32, 2
    c.optimizer.lr = 1e-3
    c.schedule.warmup_steps = 100
    # On a CPU, one half-batch per core (research/platforms/xla_flags.py); faster
    # here (docs/performance_cpu.md, "Host devices").
    c.cpu_host_devices = 2
    c.references = (
      dict(
        metric="test/accuracy",
        value=0.868,
        higher_is_better=True,
        tolerance=0.0,
        source="Keras example 'Text classification with Transformer' (IMDb, 200 tokens, 2 epochs)",
        data=dict(name="imdb_reviews"),
      ),
    )
  elif arg.variant == "bilstm":
    # The flax examples' SST-2 classifier design (embedding -> bidirectional
    # LSTM -> dense), sized for a CPU.
    c.model = ConfigDict(
      dict(
        name="lstm_classifier",
        vocab_size=None,
        num_classes=2,
        embed_dim=128,
        hidden=128,
        num_layers=1,
        dropout=0.3,
      )
    )
    c.batch_size, c.total_epochs = 64, 3
    c.optimizer.lr = 2e-3
    c.optimizer.clip_norm = 1.0
    c.schedule.warmup_steps = 100
  if arg.variant.startswith("bert"):
    # On a CPU, one half-batch per core: faster for BERT, slower for the bilstm
    # (docs/performance_cpu.md, "Host devices").
    c.cpu_host_devices = 2
    # A smaller vocabulary keeps the MLM head ([batch, 19, vocab] logits)
    # cheap on a CPU; fine-tuning must share it.
    c.data.tokenizer.vocab_size = 2000
  if arg.variant == "bert_pretrain":
    c.data.extra_train_splits = ("unsupervised",)
    c.data.pp_train = c.data.pp_eval = (
      f"tokenize(add_cls=True, add_eos=True)|truncate_pad({length})"
      f"|mlm_mask(0.15, max_predictions={max(1, round(0.15 * length))})"
      "|keep('inputs', 'positions', 'targets', 'weights')"
    )
    # The MLM head runs on the masked positions only (BERT's max_predictions:
    # 20 of 128), not on all 128.
    c.task = ConfigDict(
      dict(
        name="mlm",
        input_key="inputs",
        target_key="targets",
        weight_key="weights",
        positions_key="positions",
      )
    )
    c.precision = "auto"  # bfloat16 compute on GPU/TPU, float32 on CPU
    c.model = ConfigDict(dict(name="bert_mlm", vocab_size=None, max_len=length, **_BERT))
    c.batch_size, c.total_steps = 32, 1500
    c.optimizer.lr = 5e-4
    c.schedule.warmup_steps = 150
    # The masked-token loss on held-out reviews: on the 2,500 validation
    # reviews with every checkpoint (the best is what fine-tuning starts
    # from), on the 25k test reviews once at the end (a pass over them costs
    # as much as a few hundred training steps on a CPU).
    c.evals = ConfigDict()
    c.evals.test = eval_config("language_model", "test", topk=(), every_steps=500)
    select_on_validation(c, "loss", "min")
  elif arg.variant == "bert_finetune":
    c.precision = "auto"  # bfloat16 compute on GPU/TPU, float32 on CPU
    c.model = ConfigDict(
      dict(name="bert_classifier", vocab_size=None, num_classes=2, max_len=length, **_BERT)
    )
    c.init_from.workdir = arg.pretrained
    c.init_from.checkpoint = "best"
    c.init_from.mapping = (("encoder", "encoder"),)
    c.batch_size, c.total_epochs = 32, 2
    c.optimizer.lr = 1e-4
    c.schedule.warmup_steps = 200
    imdb = dict(name="imdb_reviews")
    c.references = (
      dict(
        metric="test/accuracy",
        value=0.902,
        higher_is_better=True,
        tolerance=0.0,
        source="Published BERT fine-tune on IMDb (accuracy 0.902)",
        data=imdb,
      ),
      dict(
        metric="test/recall/pos",
        value=0.886,
        higher_is_better=True,
        tolerance=0.0,
        source="Published BERT fine-tune on IMDb (recall 0.886)",
        data=imdb,
      ),
      dict(
        metric="test/f1/pos",
        value=0.893,
        higher_is_better=True,
        tolerance=0.0,
        source="Published BERT fine-tune on IMDb (F1 0.893)",
        data=imdb,
      ),
    )
  if arg.smoke:
    small = dict(embed_dim=16, num_heads=2, mlp_dim=32, num_layers=1)
    if c.model.name == "lstm_classifier":
      small = dict(embed_dim=8, hidden=8)
    smoke.shrink(c, model=small, eval_batch_size=32)
    c.data.tokenizer.vocab_size = 40  # what a tiny test corpus supports
  return c
