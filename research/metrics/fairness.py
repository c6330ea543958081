"""Group fairness of a credit decision for a declared sensitive attribute.

The favourable outcome is approval (predicted good). For groups g (ids >= 0;
-1 = unknown, excluded):

* demographic-parity difference: max_g P(approved | g) - min_g P(approved | g);
* equal-opportunity difference: the same over the truly good applicants
  (y = 0), i.e. the gap in the rate at which creditworthy people are approved;
* disparate-impact ratio: min_g P(approved | g) / max_g P(approved | g) (the
  "four-fifths rule" flags values below 0.8).
"""

from __future__ import annotations

import numpy as np


def approval_rates(declined, groups, mask=None) -> dict[int, float]:
  declined = np.asarray(declined, bool)
  groups = np.asarray(groups)
  keep = groups >= 0 if mask is None else (groups >= 0) & np.asarray(mask, bool)
  return {int(g): float(1 - declined[keep & (groups == g)].mean()) for g in np.unique(groups[keep])}


def fairness_report(y, declined, groups) -> dict[str, float]:
  """{'dp_difference', 'eo_difference', 'di_ratio', 'approval_rate/g<id>'}; empty
  when fewer than two groups are present."""
  y = np.asarray(y)
  rates = approval_rates(declined, groups)
  if len(rates) < 2:
    return {}
  good_rates = approval_rates(declined, groups, mask=y == 0)
  values = list(rates.values())
  out = {
    "dp_difference": max(values) - min(values),
    "di_ratio": (min(values) / max(values)) if max(values) > 0 else float("nan"),
  }
  if len(good_rates) >= 2:
    out["eo_difference"] = max(good_rates.values()) - min(good_rates.values())
  for g, r in rates.items():
    out[f"approval_rate_group{g}"] = r
  return out
