"""Text data: tokenizers, text sources, LM windows and length bucketing.

* `research.data.text.tokenizers`: `CharTokenizer`, `SentencePieceTokenizer`,
  `get_or_train_tokenizer` (train once on the training split, save beside the
  run, reload on resume / evaluation / generation).
* `research.data.text.sources`: 'tiny_shakespeare' and 'imdb_reviews' readers
  (registered in `research.data.registry.DATASETS`).
* `research.data.text.windows`: `LMWindows` (random or contiguous next-token
  windows over a token stream) and `pack_documents`.
* `research.data.text.bucketing`: `bucket_batches` (batches of similar length).

The text preprocessing ops (`tokenize`, `truncate_pad`, `mlm_mask`, `drop`)
live with the other ops in `research.data.ops.text`.

Submodules are not imported here, so importing one does not pull in the
others' dependencies (sentencepiece, tensorflow_datasets).
"""
