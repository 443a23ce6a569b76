"""models: forecasters trained on the features dataset, and their runs.

- `config`: TrainConfig, the one dataclass a run stores whole
- `nets`: DeepLOB and MLP (PyTorch modules, nothing else)
- `losses`: weighted cross-entropy and focal loss
- `train`: the PyTorch training loop (`train_network`) and `TorchForecaster`
- `lightgbm_model`: LightGBM multiclass with class weights and early stopping
- `baselines`: always-flat, the L1-imbalance rule, logistic regression
- `evaluate`: the fee-aware decision rule, per-class metrics, break-even precision, plots
- `pipeline`: inputs per model, fitting the model beside every baseline on one split
- `runs`: `train_run`, `list_runs`, `predict_with_run` (runs/<run_id>/)
- `walkforward`: rolling retrain-and-test
Every estimator has `fit(X, y, X_val, y_val)` and `predict_proba(X) -> (n, 3)` with
columns down, flat, up, so the backtester treats them alike.
"""
