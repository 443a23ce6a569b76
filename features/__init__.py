"""features: snapshots + trades -> model inputs and fee-aware labels.

- `definitions`: the features: a compiled pass over the book lists, then polars expressions for windows and labels over one partition (FEATURE_SETS)
- `labels`: fee-aware labels (DESIGN.md) and the FI-2010 research label
- `microprice`: Stoikov's micro-price, fitted on training rows only
- `build`: `build_features`, the per-partition map that writes `features/<set>/`
- `opportunities`: the opportunity report (share of rows that pay after fees)
- `sql`: duckdb views over the datasets
- `dataset`: splits, training-only normalisation and the sequence view for models
"""
