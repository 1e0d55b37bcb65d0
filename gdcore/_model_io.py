"""Saved models: JSON that ``gdcore fit --save`` writes and ``gdcore predict`` /
``gdcore.load_model`` read back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

FORMAT = "gdcore-model"
FORMAT_VERSION = 1


@dataclass
class SavedModel:
    """A fitted linear model y = ((x − mean)/scale)·coef + intercept (mean 0 and scale 1
    when the fit was not standardised)."""

    coef: np.ndarray
    intercept: float
    feature_names: list
    target: str | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    hyper_parameters: dict = field(default_factory=dict)
    loss_history: list = field(default_factory=list)
    stop_reason: str | None = None
    gdcore_version: str | None = None

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise ValueError(f"X must have {self.coef.shape[0]} columns "
                             f"({', '.join(self.feature_names)}), got shape {X.shape}")
        if self.mean is not None:
            X = (X - self.mean) / self.scale
        return X @ self.coef + self.intercept


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def save_model(path, model):
    """Write a SavedModel as JSON."""
    from . import __version__
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "gdcore_version": __version__,
        "coef": model.coef.astype(np.float64).tolist(), "intercept": float(model.intercept),
        "feature_names": list(model.feature_names), "target": model.target,
        "standardize": None if model.mean is None else {
            "mean": np.asarray(model.mean, dtype=np.float64).tolist(),
            "scale": np.asarray(model.scale, dtype=np.float64).tolist()},
        "hyper_parameters": _jsonable(model.hyper_parameters),
        "loss_history": [float(v) for v in model.loss_history],
        "stop_reason": model.stop_reason,
    }
    with open(path, "w") as f:
        json.dump(document, f, indent=1)


def load_model(path):
    """Read a model saved by ``gdcore fit --save`` (or save_model)."""
    try:
        with open(path) as f:
            document = json.load(f)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the model ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a gdcore model (invalid JSON: {exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gdcore model file")
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: saved by a newer gdcore (format version "
                         f"{document['format_version']}); upgrade gdcore to read it")
    standardize = document.get("standardize")
    return SavedModel(
        coef=np.asarray(document["coef"], dtype=np.float64),
        intercept=float(document["intercept"]),
        feature_names=list(document["feature_names"]),
        target=document.get("target"),
        mean=None if not standardize else np.asarray(standardize["mean"], dtype=np.float64),
        scale=None if not standardize else np.asarray(standardize["scale"], dtype=np.float64),
        hyper_parameters=document.get("hyper_parameters", {}),
        loss_history=document.get("loss_history", []),
        stop_reason=document.get("stop_reason"),
        gdcore_version=document.get("gdcore_version"),
    )
