"""Data layer: sources, preprocessing ops and the one grain pipeline.

* `research.data.core`: the `DataSource` protocol, `Feature`, `ArraySource`.
* `research.data.registry`: named data sets -> `get_source(name, split)`.
* `research.data.ops`: `dict -> dict` preprocessing ops parsed from spec strings.
* `research.data.pipeline`: `train_iterator` / `eval_iterator` (grain).

Submodules are not imported here, so importing one does not pull in the
others' dependencies (grain, scipy, tensorflow_datasets).
"""
