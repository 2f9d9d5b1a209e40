"""The default negative-transfer predictor (written by ``benchmarks/diagnose.py``)."""

PREDICTOR = {
    "features": ["proxy_acc_gap"], "C": 0.5, "mean": [0.0], "scale": [1.0], "coef": [0.5],
    "intercept": 0.0, "n_train": 0,
}
