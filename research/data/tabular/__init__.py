"""Tabular data: declared schemas, table sources, seeded splits and preprocessing
fitted on the training split only (saved as JSON in the workdir so evaluation and
`tools.score` reload exactly the same transform)."""

from research.data.tabular.preprocess import Preprocessor
from research.data.tabular.schema import SchemaError, TableSchema

__all__ = ["Preprocessor", "SchemaError", "TableSchema"]
