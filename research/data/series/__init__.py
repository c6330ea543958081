"""Time series for market risk: prices -> returns, rolling windows, walk-forward folds."""
