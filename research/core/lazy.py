"""Lazy imports of domain-only packages (pandas, scikit-learn, ...).

    from research.core import lazy
    with lazy.imports():
      import pandas as pd

binds `pd` to a stand-in that imports pandas on its first attribute access
(etils' `epy.lazy_imports`, the mechanism TFDS uses). Why: the training loop,
the data registry and the metrics import every domain's modules, but a run
touches only its own experiment's packages; an accelerator image that runs
only the language models then needs none of pandas, scikit-learn, lightgbm,
... (docs/gpu_tpu.md lists what each domain needs). A missing package fails
at first use with an ImportError that says how to install it.

Only whole modules can be lazy (`from sklearn import metrics` works, `from
matplotlib.figure import Figure` does not); modules using it need
`from __future__ import annotations` so type hints do not trigger the import.
etils swaps `builtins.__import__` only while the `with` block runs, i.e. while
the importing module itself is being imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from etils import epy

INSTALL_HINT = (
  "This experiment needs it; the default install has every domain's packages: "
  "pip install -c constraints.txt -e ."
)


@contextlib.contextmanager
def imports() -> Iterator[None]:
  """Context manager: `import` statements inside bind lazily loaded modules."""
  with epy.lazy_imports(error_callback=INSTALL_HINT):
    yield
