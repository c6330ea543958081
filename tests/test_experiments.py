"""Every experiment config builds, validates and trains two steps in its tiny mode.

Real code paths only: digits and MNIST-1D are embedded; Fashion-MNIST is read
from IDX files this test writes into a local data dir; MNIST and CIFAR-10 go
through the TFDS path under `tfds.testing.mock_data`.
"""

import gzip
import io
import json
import os
import tarfile

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from research.core import config as config_lib
from research.data import registry
from research.data.vision import sources as vision_sources
from research.train import loop

EXPERIMENTS = [
  ("vision/digits", "mlp"),
  ("vision/digits", "cnn"),
  ("vision/fashion_mnist", "mlp"),
  ("vision/fashion_mnist", "cnn"),
  ("vision/fashion_mnist", "cnn_aug"),
  ("vision/fashion_mnist", "resnet18"),
  ("vision/mnist", "mlp"),
  ("vision/mnist", "cnn"),
  ("vision/cifar10", "lenet"),
  ("vision/cifar10", "resnet18"),
  ("vision/mnist1d", "logistic"),
  ("vision/mnist1d", "mlp"),
  ("vision/mnist1d", "cnn"),
  ("vision/scenes_detection", "centernet"),
  ("vision/scenes_segmentation", "unet"),
  ("nlp/shakespeare_char", "gpt_cpu"),
  ("nlp/shakespeare_char", "gpt"),
  ("nlp/shakespeare_char", "lstm"),
  ("nlp/shakespeare_char", "gru"),
  ("nlp/imdb", "transformer"),
  ("nlp/imdb", "bilstm"),
  ("nlp/imdb", "bert_pretrain"),
  ("finance_risk/credit_scoring", "logreg"),
  ("finance_risk/credit_scoring", "scorecard"),
  ("finance_risk/credit_scoring", "mlp"),
  ("finance_risk/credit_scoring", "ft_transformer"),
  ("finance_risk/credit_scoring", "mlp,data=german_credit_numeric"),
  ("finance_risk/credit_scoring", "logreg,data=default"),
  ("finance_risk/market_risk", "lstm"),
  ("finance_risk/market_risk", "transformer"),
  ("finance_risk/market_risk", "direction"),
  ("recommendation/movielens_rating", "bias"),
  ("recommendation/movielens_rating", "mf"),
  ("recommendation/movielens_ncf", "gmf"),
  ("recommendation/movielens_ncf", "mlp"),
  ("recommendation/movielens_ncf", "neumf"),
  ("recommendation/movielens_two_tower", "two_tower"),
  ("recommendation/movielens_two_tower", "no_features"),
  ("recommendation/movielens_sasrec", "sasrec"),
]
# Needs a pretraining run first: see test_bert_pretrain_then_finetune_restores_the_encoder
# and test_recommendation_neumf_pretrained_starts_from_gmf_and_mlp.
SEPARATE = [("nlp/imdb", "bert_finetune"), ("recommendation/movielens_ncf", "neumf_pretrained")]
# Needs a trained classifier for its FID features: tests/test_gan_run.py trains one first.
SEPARATE += [("vision/fashion_mnist_gan", "dcgan")]
# Trained in tiny mode by tests/test_text_generation_experiments.py, on tiny copies of their data.
OWN_DATA = [("nlp/multi30k", "transformer_cpu"), ("nlp/aeslc", "transformer_cpu")]
_WORDS = [
  "the",
  "movie",
  "film",
  "plot",
  "acting",
  "story",
  "was",
  "is",
  "great",
  "good",
  "bad",
  "terrible",
  "boring",
  "loved",
  "hated",
  "actor",
  "scene",
  "ending",
  "music",
  "funny",
  "slow",
]


def write_idx_dir(directory, n_train=48, n_test=40, seed=0):
  """The four original MNIST-format files, gzipped, with random 28x28 images."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    for kind, array, code in (("images-idx3", images, 3), ("labels-idx1", labels, 1)):
      header = bytes([0, 0, 0x08, code]) + np.array(array.shape, ">u4").tobytes()
      with gzip.open(os.path.join(directory, f"{prefix}-{kind}-ubyte.gz"), "wb") as f:
        f.write(header + array.tobytes())


def write_text_dirs(root, seed=0):
  """A tiny tiny_shakespeare/input.txt and an aclImdb .tar.gz in the original layout."""
  rng = np.random.default_rng(seed)
  sentence = lambda n: " ".join(rng.choice(_WORDS, n))
  os.makedirs(root / "tiny_shakespeare")
  lines = [f"{rng.choice(['ROMEO', 'JULIET'])}:\n{sentence(8).capitalize()}.\n" for _ in range(60)]
  (root / "tiny_shakespeare" / "input.txt").write_text("\n".join(lines))
  os.makedirs(root / "imdb_reviews")
  with tarfile.open(root / "imdb_reviews" / "aclImdb_labelled.tar.gz", "w:gz") as tar:
    for split in ("train", "test"):
      for label, stars in (("pos", 9), ("neg", 2)):
        for i in range(20):
          data = f"{sentence(30)}. {'great loved' if label == 'pos' else 'bad boring'}.".encode()
          info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_{stars}.txt")
          info.size = len(data)
          tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
  """A local data dir with tiny Fashion-MNIST, tiny shakespeare and IMDb copies; no
  system copies, an empty TFDS dir."""
  monkeypatch.setattr(vision_sources, "SYSTEM_DIRS", {})
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  write_idx_dir(tmp_path / "data" / "fashion_mnist")
  write_text_dirs(tmp_path / "data")
  monkeypatch.setenv("RESEARCH_DATA_DIR", str(tmp_path / "data"))
  return tmp_path / "data"


# The fast tier's end-to-end runs (`pytest -m "not slow"`): the loop, checkpoints,
# evaluators, baselines and report on images, a table and ratings (tests/test_generate.py
# trains a character LM); every other experiment's tiny mode runs in `-m slow`.
FAST = {
  ("vision/digits", "mlp"),
  ("finance_risk/credit_scoring", "logreg"),
  ("recommendation/movielens_rating", "bias"),
}


@pytest.mark.parametrize(
  "experiment,variant",
  [e if e in FAST else pytest.param(*e, marks=pytest.mark.slow) for e in EXPERIMENTS],
)
def test_tiny_mode_trains_two_steps(experiment, variant, data_dir, tmp_path):
  config = config_lib.load(f"{experiment}:{variant},smoke=True")
  assert config.experiment == f"{experiment}:{variant},smoke=True"
  workdir = tmp_path / "run"
  with tfds.testing.mock_data(num_examples=32, policy=tfds.testing.MockPolicy.USE_CODE):
    summary = loop.run(config, str(workdir))
  assert summary["step"] == 2
  headline = next(
    k
    for k in (
      "test/accuracy",
      "val/loss",
      "test/loss",
      "test/rmse",
      "test/ndcg@10",
      "test/mAP50",
    )
    if k in summary
  )
  assert np.isfinite(summary[headline])
  # The checkpoint is chosen on a validation eval, which ran.
  assert config.evals[config.ckpt.best_metric.split("/")[0]].split == "validation"
  assert np.isfinite(summary[config.ckpt.best_metric])
  on_disk = json.loads((workdir / "summary.json").read_text())
  assert on_disk["params_fingerprint"] == summary["params_fingerprint"]
  assert all(isinstance(v, (int, float, str)) for v in on_disk.values())
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [line["step"] for line in lines if "train/loss" in line] == [1, 2]
  for name in ("config.json", "report.md", "plots/loss.png"):
    assert (workdir / name).exists(), name
  if config.task.name == "classification":
    assert (workdir / "plots" / "test_confusion_matrix.png").exists()
  if config.data.tokenizer:
    assert (workdir / "tokenizer" / "tokenizer.json").exists()
  assert any((workdir / "tensorboard").iterdir())
  assert "2" in os.listdir(workdir / "checkpoints")  # the final checkpoint
  # Every published number the config names has this run's value beside it.
  report_rows = (workdir / "report.md").read_text().splitlines()
  for ref in config.references:
    row = next(r for r in report_rows if r.startswith(f"| {ref['metric']} |"))
    assert not row.rstrip(" |").endswith("missing"), row


def test_every_experiment_module_is_listed():
  root = os.path.join(os.path.dirname(__file__), "..", "experiments")
  found = set()
  for domain in os.listdir(root):
    folder = os.path.join(root, domain)
    if os.path.isdir(folder) and not domain.startswith("_"):
      found |= {
        f"{domain}/{f[:-3]}"
        for f in os.listdir(folder)
        if f.endswith(".py") and not f.startswith("_")
      }
  listed = {e for e, _ in EXPERIMENTS + SEPARATE + OWN_DATA}
  assert found == listed, "add new experiments to EXPERIMENTS"


@pytest.mark.slow
def test_bert_pretrain_then_finetune_restores_the_encoder(data_dir, tmp_path):
  from research.train import checkpoint as ckpt_lib

  pretrain = tmp_path / "pretrain"
  loop.run(config_lib.load("nlp/imdb:bert_pretrain,smoke=True"), str(pretrain))
  config = config_lib.load(
    f"nlp/imdb:bert_finetune,smoke=True,pretrained={pretrain}",
    {"total_steps": 1, "optimizer.lr": 0.0},
  )
  finetune = tmp_path / "finetune"
  loop.run(config, str(finetune))
  # Same tokenizer, and with lr 0 the encoder after one step is exactly the
  # pretrained one (loaded, not re-initialised); the new head is not in it.
  assert (finetune / "tokenizer").exists() is False  # reused from the pretraining run
  best = ckpt_lib.Checkpointer(
    str(pretrain / "checkpoints"), best_metric="val/loss", best_mode="min"
  ).best_step()
  source = ckpt_lib.Checkpointer(str(pretrain / "checkpoints")).restore_raw(best)
  tuned = ckpt_lib.Checkpointer(str(finetune / "checkpoints")).restore_raw(1)
  pairs = zip(
    jax.tree.leaves(source["params"]["encoder"]), jax.tree.leaves(tuned["params"]["encoder"])
  )
  for a, b in pairs:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert "encoder" in tuned["params"] and len(tuned["params"]) > 1


@pytest.mark.slow
def test_recommendation_neumf_pretrained_starts_from_gmf_and_mlp(tmp_path):
  """NeuMF initialised from a GMF and an MLP run (init_from.sources): with lr 0
  its towers and heads after one step are exactly the source runs' ones."""
  from research.train import checkpoint as ckpt_lib

  runs = {}
  for variant in ("gmf", "mlp"):
    runs[variant] = tmp_path / variant
    loop.run(
      config_lib.load(f"recommendation/movielens_ncf:{variant},smoke=True"), str(runs[variant])
    )
  config = config_lib.load(
    f"recommendation/movielens_ncf:neumf_pretrained,smoke=True,gmf={runs['gmf']},mlp={runs['mlp']}",
    {"total_steps": 1, "optimizer.lr": 0.0},
  )
  loop.run(config, str(tmp_path / "neumf"))
  tuned = ckpt_lib.Checkpointer(str(tmp_path / "neumf" / "checkpoints")).restore_raw(1)["params"]
  for variant, keys in (("gmf", ("gmf", "gmf_head")), ("mlp", ("mlp", "mlp_head"))):
    source = ckpt_lib.Checkpointer(str(runs[variant] / "checkpoints")).restore_raw(2)["params"]
    for key in keys:
      for a, b in zip(jax.tree.leaves(source[key]), jax.tree.leaves(tuned[key])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # tools.recommend: top-K unseen items with titles, from the trained workdir.
  from research.apps.recommend import recommend

  _, items = recommend(str(tmp_path / "neumf"), "1", k=3, checkpoint="latest")
  data = registry.get_source(
    "movielens", "train", view="pointwise", split_by="leave_last_out"
  ).recsys
  seen = set(
    data.items.raw(
      data.train["item"][data.train["user"] == data.users.lookup(np.array([1]))[0]]
    ).tolist()
  )
  assert len(items) == 3 and all(title for _, title, _ in items)
  assert not seen & {item for item, _, _ in items}
  # Every run of the protocol ranks the same saved candidates.
  saved = [np.load(tmp_path / d / "ncf_candidates.npz")["candidates"] for d in ("gmf", "neumf")]
  np.testing.assert_array_equal(saved[0], saved[1])


@pytest.mark.slow
def test_recommendation_runs_on_another_release_with_only_a_config_change(tmp_path):
  """ml-1m's original ratings.dat / movies.dat, read by a config argument."""
  rng = np.random.default_rng(0)
  folder = tmp_path / "ml-1m"
  folder.mkdir()
  with open(folder / "ratings.dat", "w") as f:
    for u in range(1, 41):
      for k, i in enumerate(rng.choice(np.arange(1, 61), 10, replace=False)):
        f.write(f"{u}::{i}::{rng.integers(1, 6)}::{978300000 + 100 * k + u}\n")
  with open(folder / "movies.dat", "w", encoding="latin-1") as f:
    for i in range(1, 61):
      f.write(f"{i}::Movie {i} ({1950 + i})::{'Drama|Comedy' if i % 2 else 'Action'}\n")
  config = config_lib.load(
    f"recommendation/movielens_two_tower:two_tower,smoke=True,source=ml-1m,path={folder}"
  )
  summary = loop.run(config, str(tmp_path / "run"))
  assert summary["step"] == 2 and np.isfinite(summary["test/ndcg@10"])
  assert summary["test/num_examples"] == 40  # one held-out item per user
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["data"]["options"]["source"] == "ml-1m"


@pytest.mark.slow
def test_recommendation_validation_split_is_evaluated_and_picks_the_best_checkpoint(tmp_path):
  config = config_lib.load("recommendation/movielens_ncf:gmf,smoke=True,validation=True")
  assert config.ckpt.best_metric == "val/hr@10"
  summary = loop.run(config, str(tmp_path / "run"))
  assert np.isfinite(summary["val/hr@10"]) and np.isfinite(summary["test/hr@10"])
  assert summary["val/num_examples"] == summary["test/num_examples"] == 671
  assert (tmp_path / "run" / "ncf_candidates_validation.npz").exists()
