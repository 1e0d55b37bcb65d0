"""Saved models: JSON that ``gdcore fit --save`` writes and ``gdcore predict`` /
``gdcore.load_model`` read back."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import numbers
import os
import reprlib
from dataclasses import dataclass, field

import numpy as np

from ._atomic import replaced_on_success
from ._io import _shown, first_repeat
from ._predict import columns_by_name, predict_in_blocks
from ._validation import _as_array

FORMAT = "gdcore-model"
FORMAT_VERSION = 1


@dataclass(repr=False, eq=False)  # compared by identity: == of arrays has no truth value
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

    def __repr__(self):
        # a summary: coef and the loss history run to thousands of numbers
        history = list(self.loss_history) if self.loss_history is not None else []
        final = f"{history[-1]:.6g}" if history else None
        optimizer = (self.hyper_parameters or {}).get("optimizer")
        return (f"SavedModel(n_features={len(self.coef)}, target={self.target!r}, "
                f"intercept={self.intercept!r}, standardized={self.mean is not None}, "
                f"optimizer={optimizer!r}, "
                f"epochs={len(history)}, stop_reason={self.stop_reason!r}, "
                f"final_loss={final}, gdcore_version={self.gdcore_version!r})")

    def predict(self, X):
        """Predictions for X: an array of the feature columns in the saved order, or a
        DataFrame (or pyarrow Table), whose columns are taken by name (in any order, each
        feature's name once; others are ignored).  They are float64 for float32 X too: the
        file's coefficients are read as float64."""
        chosen = columns_by_name(X, self.feature_names, np.float64)
        named = chosen is not None
        if named:
            X = chosen
        # a list, a DataFrame's chosen columns; booleans, strings and complex numbers are
        # refused, as FitResult.predict and a fit refuse them
        X = _as_array("X", X)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise ValueError(f"X must have {self.coef.shape[0]} columns "
                             f"({_shown(self.feature_names)}), got shape {X.shape}")
        # as gdcore predict's blocks of a .npy: a float32 memmap, or a standardised model, is
        # not copied whole in float64
        # columns chosen by name are named in errors: their positions are not X's
        return predict_in_blocks(X, self.coef, self.intercept, self.mean, self.scale,
                                 column_names=self.feature_names if named else None)


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


def _as_saved_model(model, feature_names, target):
    """A SavedModel of a SavedModel, a FitResult or a fitted GDRegressor."""
    from ._result import FitResult
    _check_feature_names_type(feature_names)
    if isinstance(model, SavedModel):
        # saved again under other names (a .npy's "0", "1", … as a table's columns)
        return dataclasses.replace(
            model, feature_names=(model.feature_names if feature_names is None
                                  else [str(name) for name in feature_names]),
            target=model.target if target is None else target)
    names = parameters = None
    if isinstance(getattr(model, "result_", None), FitResult):  # a fitted GDRegressor
        names = getattr(model, "feature_names_in_", None)
        # coef_ and intercept_, which predict uses: they may have been set by hand since the
        # fit (the result's were saved, a model other than the estimator's)
        parameters = model._parameters()
        model = model.result_
    if not isinstance(model, FitResult):
        raise TypeError(f"model must be a FitResult (from gdcore.fit), a fitted "
                        f"gdcore.GDRegressor or a SavedModel, got {type(model).__name__}"
                        + (" (the order is save_model(path, model))"
                           if isinstance(model, (str, bytes, os.PathLike)) else ""))
    coef, intercept = parameters if parameters is not None else (model.coef, model.intercept)
    coef = np.asarray(coef, dtype=np.float64)
    if names is None:
        names = getattr(model, "feature_names", None)   # a fit of a DataFrame's columns
    if feature_names is None:
        # columns named by index, as the command line names a .npy's columns
        feature_names = [str(i) for i in range(coef.shape[0])] if names is None else names
    return SavedModel(coef=coef, intercept=float(intercept),
                      feature_names=[str(name) for name in feature_names], target=target,
                      # with what a run's bits depend on (backend, n_threads), and the
                      # epochs of every call (settings' epochs are the last call's)
                      hyper_parameters=dict(model.settings, optimizer=repr(model.optimizer),
                                            schedule=repr(model.schedule),
                                            backend=model.backend,
                                            n_threads=model.n_threads,
                                            n_epochs=model.n_epochs),
                      loss_history=list(model.loss_history), stop_reason=model.stop_reason)


def _check_feature_names_type(feature_names):
    if feature_names is not None and (isinstance(feature_names, (str, bytes))
                                      or not hasattr(feature_names, "__iter__")):
        # a string would be split into one name per character
        raise TypeError(f"feature_names must be a list of column names, got "
                        f"{type(feature_names).__name__} {feature_names!r}")
    if (isinstance(feature_names, collections.abc.Set)
            and not isinstance(feature_names, collections.abc.KeysView)):
        # a set's order is not the columns' (strings' hashes change from run to run): the
        # names would be given to the coefficients at random.  A dict's keys are in the
        # order they were put in: taken, as they were before sets were refused
        raise TypeError(f"feature_names must be a list of column names in the columns' order; "
                        f"got a {type(feature_names).__name__}, which has no order of its own")


def save_model(path, model, *, feature_names=None, target=None):
    """Write a fitted model as JSON, for ``gdcore predict`` and :func:`load_model`.

    ``model`` is a :class:`FitResult` (from ``gdcore.fit`` or ``gdcore.fit_chunks``), a fitted
    ``gdcore.GDRegressor`` or a model from ``load_model``.  ``feature_names`` name the columns
    ``gdcore predict`` reads (default: a loaded model's own, the estimator's
    ``feature_names_in_``, a FitResult's ``feature_names`` (a DataFrame's columns), else the
    column indices "0", "1", …, as a .npy's columns are named)
    and ``target`` names the predictions' column (default: a loaded model's own).
    Hyper-parameters, the loss history and the stop reason are saved with the coefficients.
    """
    if target is not None and not isinstance(target, str):
        if not isinstance(target, numbers.Integral) or isinstance(target, bool):
            raise TypeError(f"target must be a column name (str), a column index or None, "
                            f"got {type(target).__name__} {target!r}")
        target = str(int(target))       # a column index, as a .npy's columns are named
    model = _as_saved_model(model, feature_names, target)
    if len(model.feature_names) != model.coef.shape[0]:
        raise ValueError(f"feature_names has {len(model.feature_names)} names but the model "
                         f"has {model.coef.shape[0]} coefficients")
    _check_unique(model.feature_names)
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
    text = json.dumps(document, indent=1)      # whole before the file is touched
    with replaced_on_success(path) as f:
        f.write(text)


class MissingModelFile(ValueError, FileNotFoundError):
    """No file at the path given to load_model: a ValueError as every unusable model file
    is, and a FileNotFoundError as Python's own readers raise."""


def _check_unique(names):
    """A repeated name would have predict read one column twice and another never."""
    repeated = first_repeat(names)
    if repeated is not None:
        raise ValueError(f"feature_names: {repeated!r} appears more than once; each column "
                         "needs a name of its own")


def load_model(path):
    """Read a model saved by ``gdcore fit --save`` (or :func:`save_model`): a
    :class:`SavedModel`, whose ``predict(X)`` applies it (and its standardisation).

    Raises ValueError naming the file for anything that is not a readable gdcore model (a
    missing file's is also a FileNotFoundError)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        # open() takes an int as a file descriptor, and closes it when done: load_model(1)
        # (or True) closed the process's stdout
        raise TypeError(f"path must be a file name (str, bytes or os.PathLike), got "
                        f"{type(path).__name__} {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError as exc:
        raise MissingModelFile(f"{path}: cannot read the model ({exc.strerror})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the model ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a gdcore model (a binary file, not JSON text)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a gdcore model (invalid JSON: {exc})") from None
    except RecursionError:
        raise ValueError(f"{path}: not a gdcore model (JSON nested too deeply)") from None
    except ValueError as exc:   # e.g. an integer of more digits than Python converts
        raise ValueError(f"{path}: not a gdcore model ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gdcore model file")
    version = document.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"{path}: not a usable gdcore model (format_version must be a "
                         f"whole number, got {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: saved by a newer gdcore (format version {version}); "
                         "upgrade gdcore to read it")
    try:
        return _model_of(document)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        problem = (f"no {exc.args[0]!r} entry" if isinstance(exc, KeyError) else
                   "a number too large for float64" if isinstance(exc, OverflowError) else exc)
        raise ValueError(f"{path}: not a usable gdcore model ({problem})") from None


def _model_of(document):
    """The SavedModel a model document describes; KeyError, TypeError or ValueError say what
    is missing or inconsistent."""
    coef = _numbers(document["coef"], "coef")
    if coef.shape[0] == 0:
        raise ValueError("coef is empty: a model has at least one coefficient")
    intercept = document["intercept"]
    if (isinstance(intercept, bool) or not isinstance(intercept, (int, float))
            or not np.isfinite(float(intercept))):    # float(): OverflowError past float64
        raise ValueError(f"intercept must be a finite number, got {intercept!r}")
    names = document["feature_names"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("feature_names must be a list of column names")
    if len(names) != coef.shape[0]:
        raise ValueError(f"{len(names)} feature names but {coef.shape[0]} coefficients")
    _check_unique(names)
    target = document.get("target")
    if target is not None and not isinstance(target, str):
        raise ValueError(f"target must be a column name or null, got {target!r}")
    stop_reason = document.get("stop_reason")
    if stop_reason is not None and not isinstance(stop_reason, str):
        raise ValueError(f"stop_reason must be a string or null, got {stop_reason!r}")
    hyper_parameters = document.get("hyper_parameters", {})
    if not isinstance(hyper_parameters, dict):
        raise ValueError("hyper_parameters must be an object")
    loss_history = _numbers(document.get("loss_history", []), "loss_history",
                            finite=False).tolist()
    standardize = document.get("standardize")
    mean = scale = None
    if standardize is not None:
        # null, or both of mean and scale: an empty or false entry read as no scaling would
        # apply the scaled columns' coefficients to unscaled ones
        missing = ([key for key in ("mean", "scale") if key not in standardize]
                   if isinstance(standardize, dict) else None)
        if missing is None or missing:
            raise ValueError(f"standardize must be null or an object with mean and scale, "
                             f"got {reprlib.repr(standardize)}"
                             + (f" (no {missing[0]!r})" if missing else ""))
        mean = _numbers(standardize["mean"], "standardize mean", coef.shape[0])
        scale = _numbers(standardize["scale"], "standardize scale", coef.shape[0])
        if not (scale > 0).all():
            raise ValueError("standardize scale must be > 0")
    return SavedModel(
        coef=coef, intercept=float(intercept), feature_names=names,
        target=target, mean=mean, scale=scale, hyper_parameters=hyper_parameters,
        loss_history=loss_history, stop_reason=stop_reason,
        gdcore_version=document.get("gdcore_version"),
    )


def _numbers(values, name, length=None, finite=True):
    """values as a 1-D float64 array of numbers, finite ones unless ``finite=False`` (of
    ``length`` of them, if given)."""
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a list of numbers")
    array = np.asarray(values, dtype=np.float64)
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} has a non-finite value")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} values but the model has {length} "
                         "coefficients")
    return array
