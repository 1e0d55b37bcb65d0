"""The C and Cython APIs, proven by building and running a C program and a Cython extension
against gdcore in a temporary folder, and comparing with gdcore.fit."""

import importlib
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import gdcore

from conftest import problem, subprocess_env

CC = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
needs_compiler = pytest.mark.skipif(shutil.which(CC) is None,
                                    reason=f"no C compiler ({CC}) on this machine")

C_PROGRAM = textwrap.dedent(r"""
    #include <math.h>
    #include <stdio.h>
    #include <string.h>
    #include "gdcore.h"

    int main(void)
    {
        Py_Initialize();
        const gdcore_api *api = gdcore_import();
        if (api == NULL) { PyErr_Print(); return 10; }
        Py_BEGIN_ALLOW_THREADS          /* the API needs no GIL */

        enum { N = 200, D = 3 };
        static double X[N * D], y[N], theta[D + 1], state[3 * (D + 1)], history[50];
        for (int i = 0; i < N; i++) {   /* y = 1 + 2 x0 - x1 + 0.5 x2, deterministic rows */
            for (int j = 0; j < D; j++) X[i * D + j] = sin(1.0 + i * 0.37 + j * 1.91);
            y[i] = 1.0 + 2.0 * X[i * D] - X[i * D + 1] + 0.5 * X[i * D + 2];
        }
        gd_fit_options options;
        memset(&options, 0, sizeof options);
        options.optimizer.kind = GD_ADAM;
        options.optimizer.lr = 0.05;
        options.optimizer.beta1 = 0.9;
        options.optimizer.beta2 = 0.999;
        options.optimizer.eps = 1e-8;
        options.schedule.kind = GD_CONSTANT;
        options.epochs = 50;
        options.batch_size = BATCH;
        options.fit_intercept = 1;
        options.tol = -1.0;             /* off */
        options.gtol = -1.0;
        options.n_iter_no_change = 5;
        options.n_threads = 2;
        gd_fit_info info = {0, 0, 0, HUGE_VAL, 0, 0};
        int code = api->fit_f64(X, y, NULL, N, D, &options, theta, state, history, &info);
        if (code != GD_OK) { printf("error %d %s\n", code, api->strerror(code)); return 11; }
        printf("theta %.17g %.17g %.17g %.17g\n", theta[0], theta[1], theta[2], theta[3]);
        printf("history %.17g %.17g epochs %lld updates %lld\n", history[0], history[49],
               info.epochs_run, info.n_updates);

        /* errors come back as codes, never as a crash or a Python exception */
        options.optimizer.lr = -1.0;
        printf("bad-lr %d %s\n", api->fit_f64(X, y, NULL, N, D, &options, theta, state,
                                              history, &info), api->strerror(GD_ERR_OPTIONS));
        options.optimizer.lr = 0.05;
        printf("null-x %d\n", api->fit_f64(NULL, y, NULL, N, D, &options, theta, state,
                                            history, &info));
        X[5] = NAN;
        printf("nan-x %d\n", api->fit_f64(X, y, NULL, N, D, &options, theta, state, history,
                                           &info));
        double loss, grad[D + 1];
        printf("shape %d\n", api->loss_grad_f64(X, y, NULL, 0, D, theta, 0, 0, 1, 1, &loss, grad));
        printf("version %d.%d\n", api->version_major, api->version_minor);
        Py_END_ALLOW_THREADS
        int pending = PyErr_Occurred() != NULL;
        printf("pending %d\n", pending);
        Py_Finalize();
        return 0;
    }
""")


def embed_flags():
    paths = sysconfig.get_paths()
    libdir = sysconfig.get_config_var("LIBDIR")
    version = sysconfig.get_config_var("LDVERSION") or sysconfig.get_python_version()
    cflags = [f"-I{paths['include']}", f"-I{gdcore.get_include()}"]
    ldflags = [f"-L{libdir}", f"-Wl,-rpath,{libdir}", f"-lpython{version}", "-lm"]
    return cflags, ldflags


def run_embedded(tmp_path, name, program, extra_flags=()):
    """Compile the C program (which embeds Python), run it; its stdout."""
    source = tmp_path / f"{name}.c"
    source.write_text(program)
    cflags, ldflags = embed_flags()
    subprocess.run([CC, str(source), "-o", str(tmp_path / name), *cflags, *extra_flags,
                    *ldflags], check=True, capture_output=True)
    env = subprocess_env()
    env["PYTHONHOME"] = sys.base_prefix
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *site.getsitepackages()])
    run = subprocess.run([str(tmp_path / name)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def reference_data():
    i = np.arange(200)[:, None]
    j = np.arange(3)[None, :]
    X = np.sin(1.0 + i * 0.37 + j * 1.91)
    y = 1.0 + 2.0 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2]
    return X, y


@needs_compiler
@pytest.mark.parametrize("batch", [0, 16])
def test_c_program_fits_through_the_api(tmp_path, batch):
    out = run_embedded(tmp_path, "fit", C_PROGRAM.replace("BATCH", str(batch)))
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    theta = np.array(lines["theta"].split(), dtype=float)
    X, y = reference_data()
    expected = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=50, tol=None,
                          batch_size=batch or None, shuffle=False, n_threads=2,
                          precompute=False)
    np.testing.assert_allclose(theta[:3], expected.coef, rtol=1e-12)
    assert theta[3] == pytest.approx(expected.intercept, rel=1e-12)
    history = lines["history"].split()
    assert float(history[0]) == pytest.approx(expected.loss_history[0], rel=1e-12)
    assert float(history[1]) == pytest.approx(expected.loss_history[-1], rel=1e-12)
    assert history[3] == "50" and int(history[5]) == expected.n_updates
    assert lines["bad-lr"].startswith("5 ") and "out of range" in lines["bad-lr"]
    assert lines["null-x"] == "1" and lines["nan-x"] == "3" and lines["shape"] == "2"
    assert lines["version"] == "1.6" and lines["pending"] == "0"


CYTHON_EXTENSION = textwrap.dedent("""
    # cython: language_level=3
    from cython cimport floating
    from libc.math cimport HUGE_VAL
    from libc.string cimport memset
    from gdcore.capi cimport (gdcore_api, gdcore_import, gd_fit_options, gd_fit_info,
                              gd_optimizer, GD_OK, GD_SGD, GD_CONSTANT)

    cdef const gdcore_api* api = gdcore_import()

    def losses_along_a_line(double[:, ::1] X, double[::1] y, double[::1] theta,
                            double[::1] direction, int steps):
        '''J at theta + k·direction for k < steps: the kernel called in a nogil loop.'''
        cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k, j
        out = [0.0] * steps
        cdef double[::1] point = theta.copy()
        cdef double[::1] grad = theta.copy()
        cdef double loss
        cdef int code = GD_OK
        cdef double[64] losses
        with nogil:
            for k in range(steps):
                for j in range(d + 1):
                    point[j] = theta[j] + k * direction[j]
                code = api.loss_grad_f64(&X[0, 0], &y[0], NULL, n, d, &point[0], 0.0, 0.0,
                                         1, 1, &loss, &grad[0])
                if code != GD_OK:
                    break
                losses[k] = loss
        if code != GD_OK:
            raise ValueError(api.strerror(code).decode())
        return [losses[k] for k in range(steps)]

    def sgd_fit(double[:, ::1] X, double[::1] y, double lr, long long epochs):
        cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
        cdef gd_fit_options options
        memset(&options, 0, sizeof(options))
        options.optimizer.kind = GD_SGD
        options.optimizer.lr = lr
        options.schedule.kind = GD_CONSTANT
        options.epochs = epochs
        options.fit_intercept = 1
        options.tol = -1.0
        options.gtol = -1.0
        options.n_iter_no_change = 1
        options.n_threads = 1
        cdef gd_fit_info info
        memset(&info, 0, sizeof(info))
        info.best_loss = HUGE_VAL
        theta = [0.0] * (d + 1)
        cdef double[::1] th = __import__("numpy").zeros(d + 1)
        cdef double[::1] state = __import__("numpy").zeros(3 * (d + 1))
        cdef double[::1] history = __import__("numpy").zeros(epochs)
        cdef int code
        with nogil:
            code = api.fit_f64(&X[0, 0], &y[0], NULL, n, d, &options, &th[0], &state[0],
                               &history[0], &info)
        if code != GD_OK:
            raise ValueError(api.strerror(code).decode())
        return list(th), list(history)

    def fit_code(floating[:, ::1] X, floating[::1] y, weights, dict options, dict info,
                 floating[::1] theta, floating[::1] state, double[::1] history):
        '''api.fit_f64 or fit_f32, by X's type, with gd_fit_options and gd_fit_info built
        from dicts (every field given); returns (code, info as a dict).'''
        cdef gd_fit_options c_options = options
        cdef gd_fit_info c_info = info
        cdef floating[::1] w
        cdef const floating* w_ptr = NULL
        if weights is not None:
            w = weights
            w_ptr = &w[0]
        if floating is double:
            code = api.fit_f64(&X[0, 0], &y[0], w_ptr, X.shape[0], X.shape[1], &c_options,
                               &theta[0], &state[0], &history[0], &c_info)
        else:
            code = api.fit_f32(&X[0, 0], &y[0], w_ptr, X.shape[0], X.shape[1], &c_options,
                               &theta[0], &state[0], &history[0], &c_info)
        return code, c_info

    def last_error():
        return api.last_error().decode()

    def codes_for_sizes(Py_ssize_t n, Py_ssize_t d, bint step=True):
        '''fit's and loss_grad's (and step's) codes for sizes n and d given with buffers of
        16 values (the sizes a caller's uninitialised variables could give).'''
        cdef double[16] X, y, theta, grad, state, history
        cdef double loss
        cdef gd_fit_options options
        cdef gd_fit_info info
        cdef gd_optimizer optimizer
        memset(X, 0, sizeof(X))
        memset(y, 0, sizeof(y))
        memset(theta, 0, sizeof(theta))
        memset(state, 0, sizeof(state))
        memset(&options, 0, sizeof(options))
        memset(&info, 0, sizeof(info))
        memset(&optimizer, 0, sizeof(optimizer))
        options.optimizer.lr = 0.1
        options.epochs = 1
        options.n_iter_no_change = 1
        options.n_threads = 1
        options.tol = -1.0
        options.gtol = -1.0
        codes = [api.fit_f64(X, y, NULL, n, d, &options, theta, state, history, &info),
                 api.loss_grad_f64(X, y, NULL, n, d, theta, 0.0, 0.0, 1, 1, &loss, grad)]
        if step:
            codes.append(api.step_f64(&optimizer, theta, grad, state, d, 1, 1, 0.1, 0.0))
        return codes, api.last_error().decode()

    def step_code(dict optimizer, double[::1] theta, double[::1] grad, double[::1] state,
                  long long t, double lr, double l1, int fit_intercept=1):
        '''api.step_f64 with a gd_optimizer built from a dict; returns the code.'''
        cdef gd_optimizer c_optimizer = optimizer
        return api.step_f64(&c_optimizer, &theta[0], &grad[0], &state[0], theta.shape[0] - 1,
                            fit_intercept, t, lr, l1)

    def loss_grad_code(double[:, ::1] X, double[::1] y, weights, double[::1] theta,
                       int fit_intercept, int n_threads=1, double l2=0.0, double l1=0.0,
                       bint grad_in_theta=False):
        '''api.loss_grad_f64; returns (code, loss, grad).  grad_in_theta: grad is written
        over (a copy of) theta itself.'''
        cdef double[::1] w
        cdef const double* w_ptr = NULL
        cdef double loss = 0.0
        cdef double[::1] point = theta.copy()
        cdef double[::1] grad = point if grad_in_theta else theta.copy()
        if weights is not None:
            w = weights
            w_ptr = &w[0]
        code = api.loss_grad_f64(&X[0, 0], &y[0], w_ptr, X.shape[0], X.shape[1], &point[0],
                                 l2, l1, fit_intercept, n_threads, &loss, &grad[0])
        return code, loss, list(grad)
""")

OPTIMIZER_FIELDS = ("kind lr momentum dampening nesterov lr_decay initial_accumulator_value "
                    "alpha eps centered beta1 beta2 amsgrad").split()
SCHEDULE_FIELDS = ("kind step_size gamma T_max eta_min start_factor end_factor total_iters "
                   "power_t").split()


def c_options(optimizer, schedule=None, **settings):
    """A gd_fit_options as a dict, every field set: the given ones, else 0 (tol and gtol off)."""
    options = dict(epochs=10, batch_size=0, l2=0.0, l1=0.0, fit_intercept=1, tol=-1.0,
                   n_iter_no_change=5, gtol=-1.0, n_threads=1)
    options.update(settings)
    options["optimizer"] = every_field(OPTIMIZER_FIELDS, optimizer)
    options["schedule"] = every_field(SCHEDULE_FIELDS, schedule or {})
    return options


def every_field(fields, given):
    """A C struct as a dict (Cython converts only complete ones): the given fields, else 0."""
    return dict(dict.fromkeys(fields, 0), **given)


def fresh_info(**fields):
    return dict(dict(n_updates=0, n_epochs=0, n_no_improvement=0, best_loss=float("inf"),
                     epochs_run=0, stop_reason=0), **fields)


@pytest.fixture(scope="module")
def uses_gdcore(tmp_path_factory):
    """The Cython extension above, built as a user builds it: in this environment as it is
    (an editable install keeps the package off sys.path; subprocess_env would put the
    repository root on it), imported here."""
    return build_and_import(tmp_path_factory, "uses_gdcore", CYTHON_EXTENSION, SETUP)


def build_and_import(tmp_path_factory, name, source, setup):
    """Build the Cython module ``name`` from its source and setup.py in a folder of its own,
    as a user does (in this environment as it is), and import it."""
    folder = tmp_path_factory.mktemp(name)
    (folder / f"{name}.pyx").write_text(source)
    (folder / "setup.py").write_text(setup)
    build = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                           cwd=folder, capture_output=True, text=True, env=dict(os.environ))
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


SETUP = textwrap.dedent("""
    import gdcore
    from Cython.Build import cythonize
    from setuptools import Extension, setup
    setup(name="uses_gdcore", ext_modules=cythonize(
        [Extension("uses_gdcore", ["uses_gdcore.pyx"], include_dirs=[gdcore.get_include()])],
        include_path=[gdcore.get_cython_include()]))
""")


@needs_compiler
def test_cython_extension_cimports_gdcore(uses_gdcore):
    X, y, _ = gdcore.make_regression(300, 4, seed=1)
    theta = np.zeros(5)
    line = uses_gdcore.losses_along_a_line(X, y, theta, np.full(5, 0.1), 5)
    for k, loss in enumerate(line):
        point = np.full(5, 0.1 * k)
        assert loss == pytest.approx(0.5 * np.mean((X @ point[:4] + point[4] - y) ** 2),
                                     rel=1e-12)
    theta, history = uses_gdcore.sgd_fit(X, y, 0.1, 20)
    expected = gdcore.fit(X, y, optimizer="sgd", lr=0.1, epochs=20, tol=None,
                          precompute=False, n_threads=1)
    np.testing.assert_allclose(theta[:4], expected.coef, rtol=1e-12)
    np.testing.assert_allclose(history, expected.loss_history, rtol=1e-12)


@needs_compiler
@pytest.mark.parametrize("batch_size", [0, 32])
def test_c_fit_starts_adagrad_at_its_initial_accumulator(uses_gdcore, batch_size):
    """Zeros in, as the header asks: the sum starts at initial_accumulator_value, so the fit
    equals gdcore.fit's (torch.optim.Adagrad's) and not the fit from a zero sum."""
    X, y, _ = gdcore.make_regression(300, 4, seed=2)
    optimizer = dict(kind=1, lr=0.1, initial_accumulator_value=0.5, eps=1e-10)
    theta, state, history = np.zeros(5), np.zeros(15), np.zeros(20)
    code, info = uses_gdcore.fit_code(X, y, None, c_options(optimizer, epochs=20,
                                                          batch_size=batch_size),
                                      fresh_info(), theta, state, history)
    assert code == 0
    options = dict(optimizer=gdcore.optim.Adagrad(lr=0.1, initial_accumulator_value=0.5),
                   epochs=20, tol=None, batch_size=batch_size or None, shuffle=False,
                   n_threads=1, precompute=False)
    expected = gdcore.fit(X, y, **options)
    np.testing.assert_allclose(theta[:4], expected.coef, rtol=1e-12)
    np.testing.assert_allclose(history, expected.loss_history, rtol=1e-12)
    from_zero = gdcore.fit(X, y, **dict(options, optimizer=gdcore.optim.Adagrad(lr=0.1)))
    assert np.max(np.abs(from_zero.coef - expected.coef)) > 1e-3
    # continuing (n_updates > 0) keeps the state it is given: 20 epochs = 10 + 10
    theta2, state2, history2 = np.zeros(5), np.zeros(15), np.zeros(10)
    code, info2 = uses_gdcore.fit_code(X, y, None, c_options(optimizer, epochs=10,
                                                           batch_size=batch_size),
                                       fresh_info(), theta2, state2, history2)
    code, info2 = uses_gdcore.fit_code(X, y, None, c_options(optimizer, epochs=10,
                                                           batch_size=batch_size),
                                       info2, theta2, state2, history2)
    assert code == 0 and info2["n_epochs"] == 20
    np.testing.assert_array_equal(theta2, theta)


ADAM = dict(kind=3, lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8)
GD_ERR_INPUT, GD_ERR_WEIGHTS, GD_ERR_OPTIONS, GD_ERR_INFO = 3, 4, 5, 9


@needs_compiler
@pytest.mark.parametrize("change, code", [
    (dict(weights=np.full(300, 1e307)), GD_ERR_WEIGHTS),      # finite weights, infinite sum
    (dict(weights=np.r_[1e300, np.full(299, 1e-30)]), GD_ERR_WEIGHTS),  # 0 once scaled
    (dict(info=fresh_info(best_loss=float("nan"))), GD_ERR_INFO),
    (dict(info=fresh_info(best_loss=-1.0)), GD_ERR_INFO),
    (dict(info=fresh_info(n_updates=-5)), GD_ERR_INFO),
    (dict(info=fresh_info(n_epochs=-1)), GD_ERR_INFO),
    (dict(info=fresh_info(n_no_improvement=-1)), GD_ERR_INFO),
    (dict(schedule=dict(kind=1, step_size=2.5, gamma=0.5)), GD_ERR_OPTIONS),
    (dict(schedule=dict(kind=3, T_max=2.5)), GD_ERR_OPTIONS),
    (dict(schedule=dict(kind=4, start_factor=0.5, end_factor=1.0, total_iters=1.5)),
     GD_ERR_OPTIONS),
    (dict(schedule=dict(kind=1, step_size=2.0, gamma=0.5)), 0),   # whole sizes are fine
    # (since 1.3) what gdcore.fit refuses as not finite, the thread counts OpenMP could not
    # start without ending the process, counters that could overflow
    (dict(options=dict(tol=float("inf"))), GD_ERR_OPTIONS),
    (dict(options=dict(gtol=float("inf"))), GD_ERR_OPTIONS),
    (dict(options=dict(tol=float("-inf"))), 0),                  # < 0: off
    (dict(options=dict(n_threads=1025)), GD_ERR_OPTIONS),
    (dict(info=fresh_info(n_updates=2 ** 62)), GD_ERR_INFO),
    (dict(info=fresh_info(n_epochs=2 ** 62)), GD_ERR_INFO),
    (dict(info=fresh_info(n_no_improvement=2 ** 62)), GD_ERR_INFO),
    (dict(info=fresh_info(n_updates=2 ** 62 - 10 ** 6, n_epochs=2 ** 62 - 10 ** 6)), 0),
    # (since 1.4) epochs that would take a counter to 2^62: 10 epochs (of 10 batches of 32)
    (dict(info=fresh_info(n_epochs=2 ** 62 - 10)), GD_ERR_INFO),
    (dict(info=fresh_info(n_epochs=2 ** 62 - 11)), 0),
    (dict(info=fresh_info(n_updates=2 ** 62 - 10)), GD_ERR_INFO),
    (dict(info=fresh_info(n_updates=2 ** 62 - 11)), 0),
    (dict(info=fresh_info(n_updates=2 ** 62 - 100), options=dict(batch_size=32)), GD_ERR_INFO),
    (dict(info=fresh_info(n_updates=2 ** 62 - 101), options=dict(batch_size=32)), 0),
])
def test_c_fit_rejects_what_gdcore_fit_rejects(uses_gdcore, change, code):
    X, y, _ = gdcore.make_regression(300, 4, seed=1)
    theta, state, history = np.zeros(5), np.zeros(15), np.zeros(10)
    got, _ = uses_gdcore.fit_code(X, y, change.get("weights"),
                                  c_options(ADAM, change.get("schedule"),
                                            **{"tol": 1e-3, **change.get("options", {})}),
                                  change.get("info", fresh_info()), theta, state, history)
    assert got == code
    if code:
        assert not theta.any() and not state.any()    # nothing was run


@needs_compiler
@pytest.mark.parametrize("optimizer, state_nan, l1, code", [
    (ADAM, False, 0.5, GD_ERR_OPTIONS),                 # l1 is SGD's (as fit_f64 says)
    (dict(kind=0, lr=0.1), False, 0.5, 0),
    (ADAM, True, 0.0, GD_ERR_INPUT),                    # NaN in the state is bad input
    (ADAM, False, 0.0, 0),
])
def test_c_step_validates_l1_and_state(uses_gdcore, optimizer, state_nan, l1, code):
    theta, grad, state = np.ones(5), np.full(5, 0.5), np.zeros(15)
    if state_nan:
        state[3] = np.nan
    assert uses_gdcore.step_code(every_field(OPTIMIZER_FIELDS, optimizer), theta, grad, state,
                                 1, 0.1, l1) == code


@needs_compiler
def test_c_step_starts_adagrad_at_its_initial_accumulator(uses_gdcore):
    theta, grad, state = np.ones(3), np.array([0.5, -1.0, 2.0]), np.zeros(9)
    optimizer = dict(kind=1, lr=0.1, initial_accumulator_value=0.5, eps=1e-10)
    assert uses_gdcore.step_code(every_field(OPTIMIZER_FIELDS, optimizer), theta, grad, state,
                                 1, 0.1, 0.0) == 0
    # torch.optim.Adagrad, by hand: sum = 0.5 + g², θ -= lr·g / (√sum + eps)
    total = 0.5 + grad ** 2
    np.testing.assert_allclose(state[:3], total, rtol=1e-15)
    np.testing.assert_allclose(theta, 1.0 - 0.1 * grad / (np.sqrt(total) + 1e-10), rtol=1e-15)


def test_get_include_has_the_header_and_pxd():
    include = gdcore.get_include()
    assert os.path.isfile(os.path.join(include, "gdcore.h"))
    assert os.path.isfile(os.path.join(os.path.dirname(include), "capi.pxd"))
    assert gdcore._core.C_API_VERSION == (1, 6)


GD_ERR_LOSS_NOT_FINITE = 6


@needs_compiler
@pytest.mark.parametrize("scale", [2.5e305, 1e-310])
@pytest.mark.parametrize("batch_size", [0, 32])
def test_c_api_takes_weights_at_any_scale_as_gdcore_fit_does(uses_gdcore, scale, batch_size):
    """gdcore.fit brings weights near 1 by a power of two (the same fit); the C API too: with
    weights ~1e305 its sums overflowed (GD_OK with a NaN loss, or a divergence), and subnormal
    they lost precision."""
    X, y, _ = gdcore.make_regression(300, 4, seed=5)
    weights = np.random.default_rng(6).uniform(0.5, 1.5, 300) * scale
    theta, state, history = np.zeros(5), np.zeros(15), np.zeros(10)
    code, _ = uses_gdcore.fit_code(X, y, weights, c_options(ADAM, batch_size=batch_size),
                                   fresh_info(), theta, state, history)
    assert code == 0
    expected = gdcore.fit(X, y, sample_weight=weights, optimizer=gdcore.optim.Adam(lr=0.05),
                          epochs=10, tol=None, batch_size=batch_size or None, shuffle=False,
                          n_threads=1, precompute=False)
    np.testing.assert_allclose(theta[:4], expected.coef, rtol=1e-12)
    np.testing.assert_allclose(history, expected.loss_history, rtol=1e-12)
    code, loss, grad = uses_gdcore.loss_grad_code(X, y, weights, np.full(5, 0.3), 1)
    unit = weights / weights.max()
    r = X @ np.full(4, 0.3) + 0.3 - y
    assert code == 0
    assert loss == pytest.approx(0.5 * np.sum(unit * r * r) / unit.sum(), rel=1e-12)
    np.testing.assert_allclose(grad[:4], X.T @ (unit * r) / unit.sum(), rtol=1e-11)


@needs_compiler
def test_c_loss_grad_reports_an_overflow(uses_gdcore):
    X, y, _ = gdcore.make_regression(50, 3, seed=7)
    code, loss, _ = uses_gdcore.loss_grad_code(X * 1e160, y, None, np.ones(4), 1)
    assert code == GD_ERR_LOSS_NOT_FINITE and not np.isfinite(loss)
    assert uses_gdcore.loss_grad_code(X, y, None, np.ones(4), 1)[0] == 0
    assert uses_gdcore.loss_grad_code(X, y, None, np.ones(4), 1, 1025)[0] == GD_ERR_OPTIONS


@needs_compiler
def test_c_api_refuses_an_intercept_without_fit_intercept(uses_gdcore):
    """gdcore.fit refuses init with b != 0 and fit_intercept=False; so does every C entry
    (fit_f64 used to set theta[d] to 0 silently, loss_grad to use it)."""
    X, y, _ = gdcore.make_regression(50, 3, seed=8)
    theta = np.array([0.1, 0.2, 0.3, 1.0])
    assert uses_gdcore.loss_grad_code(X, y, None, theta, 0)[0] == GD_ERR_INPUT
    state, history = np.zeros(12), np.zeros(10)
    code, _ = uses_gdcore.fit_code(X, y, None, c_options(ADAM, fit_intercept=0),
                                   fresh_info(), theta, state, history)
    assert code == GD_ERR_INPUT and theta[3] == 1.0
    assert uses_gdcore.step_code(every_field(OPTIMIZER_FIELDS, ADAM), theta, np.ones(4),
                                 state, 1, 0.1, 0.0, 0) == GD_ERR_INPUT
    theta[3] = 0.0
    assert uses_gdcore.loss_grad_code(X, y, None, theta, 0)[0] == 0


@needs_compiler
def test_c_step_goes_on_from_an_infinite_state(uses_gdcore):
    """An Adagrad sum of g² past the type's range is +inf: a state the next step goes on from
    (g/√inf = 0), as gdcore.fit(init=result) does; NaN is still refused (above)."""
    theta, grad = np.ones(3), np.array([0.5, -1.0, 2.0])
    state = np.zeros(9)
    state[0] = np.inf
    optimizer = every_field(OPTIMIZER_FIELDS, dict(kind=1, lr=0.1, eps=1e-10))
    assert uses_gdcore.step_code(optimizer, theta, grad, state, 2, 0.1, 0.0) == 0
    assert theta[0] == 1.0 and state[0] == np.inf
    np.testing.assert_allclose(theta[1:], 1.0 - 0.1 * grad[1:] / (np.abs(grad[1:]) + 1e-10),
                               rtol=1e-15)


AFTER_FINALIZE = textwrap.dedent(r"""
    #include <math.h>
    #include <stdio.h>
    #include <string.h>
    #include "gdcore.h"

    enum { N = 20000, D = 10, EPOCHS = 20 };
    static double X[N * D], y[N];

    static int fit(const gdcore_api *api, long long batch_size)
    {
        gd_fit_options options;
        memset(&options, 0, sizeof options);
        options.optimizer.kind = GD_SGD;
        options.optimizer.lr = 0.1;
        options.schedule.kind = GD_CONSTANT;
        options.epochs = EPOCHS;
        options.batch_size = batch_size;
        options.fit_intercept = 1;
        options.tol = -1.0;
        options.gtol = -1.0;
        options.n_iter_no_change = 5;
        options.n_threads = 2;
        double theta[D + 1] = {0}, state[3 * (D + 1)] = {0}, history[EPOCHS];
        gd_fit_info info = {0, 0, 0, HUGE_VAL, 0, 0};
        int code = api->fit_f64(X, y, NULL, N, D, &options, theta, state, history, &info);
        printf("fit%lld %d", batch_size, code);
        for (int j = 0; j <= D; j++) printf(" %.17g", theta[j]);
        printf(" %.17g\n", history[EPOCHS - 1]);
        return code;
    }

    int main(void)
    {
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < D; j++) X[i * D + j] = ((i * 7 + j * 13) % 97 - 48) / 64.0;
            y[i] = 1.0 + X[i * D] - 0.5 * X[i * D + 3];
        }
        Py_Initialize();
        const gdcore_api *api = gdcore_import();
        if (api == NULL) { PyErr_Print(); return 10; }
        if (Py_FinalizeEx() < 0) return 11;
        /* Python is gone: a call that touched it (a GIL check, a release) aborts here */
        double theta[D + 1] = {0}, loss, grad[D + 1];
        theta[0] = 0.25;
        int code = api->loss_grad_f64(X, y, NULL, N, D, theta, 0.0, 0.0, 1, 2, &loss, grad);
        printf("loss_grad %d %.17g %.17g\n", code, loss, grad[0]);
        return fit(api, 0) || fit(api, 4096) || code;
    }
""")


@needs_compiler
def test_c_api_runs_threaded_passes_after_python_is_finalized(tmp_path):
    """gdcore.h: the functions never touch Python.  Cython wrapped the core's OpenMP regions
    in "release the GIL if held" (PyGILState_Check, PyEval_SaveThread): with n_threads = 2, a
    call after Py_FinalizeEx (or after a sub-interpreter had existed) aborted the process,
    and a caller holding the GIL had it released under it.  Here the threaded full-batch team,
    the threaded mini-batch pass and loss_grad run after Py_FinalizeEx, and give
    gdcore.fit's results."""
    out = run_embedded(tmp_path, "after", AFTER_FINALIZE)
    lines = {line.split()[0]: line.split()[1:] for line in out.strip().splitlines()}
    i, j = np.arange(20000)[:, None], np.arange(10)[None, :]
    X = ((i * 7 + j * 13) % 97 - 48) / 64.0     # exact in binary: no libm's last bits
    y = 1.0 + X[:, 0] - 0.5 * X[:, 3]
    theta = np.zeros(11)
    theta[0] = 0.25
    r = X @ theta[:10] - y
    code, loss, grad0 = lines["loss_grad"]
    assert code == "0"
    assert float(loss) == pytest.approx(0.5 * np.mean(r * r), rel=1e-12)
    assert float(grad0) == pytest.approx(np.mean(r * X[:, 0]), rel=1e-12)
    for batch in (0, 4096):
        code, *values = lines[f"fit{batch}"]
        assert code == "0"
        expected = gdcore.fit(X, y, optimizer="sgd", lr=0.1, epochs=20, tol=None,
                              batch_size=batch or None, shuffle=False, n_threads=2,
                              precompute=False)
        values = np.array(values, dtype=float)
        np.testing.assert_array_equal(values[:10], expected.coef)
        assert values[10] == expected.intercept
        assert values[11] == expected.loss_history[-1]


@needs_compiler
@pytest.mark.parametrize("batch_size", [0, 4096])
def test_c_api_keeps_the_gil_of_a_caller_that_holds_it(uses_gdcore, batch_size):
    """A call made with the GIL held keeps it (no other Python thread runs meanwhile), as a
    native caller that also holds its own locks needs (else: a deadlock with a Python thread
    that takes the GIL, then that lock); see the test above for the cause."""
    X, y, _ = gdcore.make_regression(100_000, 10, seed=3)
    ticks = []
    running = threading.Event()
    stop = threading.Event()

    def tick():
        running.set()
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        running.wait()
        theta, state, history = np.zeros(11), np.zeros(33), np.zeros(40)
        options = c_options(dict(kind=0, lr=0.05), epochs=40, batch_size=batch_size,
                            n_threads=2)
        # no forced switch to the ticker between the clock and the call (only a release of
        # the GIL lets it run)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(30.0)
        try:
            # A wait for the GIL that began under the old interval still asks for it after
            # 5 ms, and the main thread gives it up at its next bytecode, before the call: the
            # ticker then ran between the clock and the call (a CI failure).  While this sleep
            # releases the GIL, the ticker's waits begin again under the new interval.
            time.sleep(0.02)
            started = time.perf_counter()
            code, info = uses_gdcore.fit_code(X, y, None, options, fresh_info(), theta,
                                              state, history)
            finished = time.perf_counter()
        finally:
            sys.setswitchinterval(interval)
    finally:
        stop.set()
        ticker.join()
    assert code == 0 and info["epochs_run"] == 40
    during = [t for t in ticks if started < t < finished]
    assert during == [], f"another Python thread ran {len(during)} times during the call"


@needs_compiler
def test_c_fit_refused_says_no_epochs_ran(uses_gdcore):
    """A refused call sets epochs_run to 0 (history holds nothing of it) and stop_reason to
    GD_STOP_EPOCHS: the outputs of an earlier call were left there."""
    X, y, _ = gdcore.make_regression(300, 4, seed=1)
    theta, state, history = np.zeros(5), np.zeros(15), np.zeros(10)
    code, info = uses_gdcore.fit_code(X, y, None, c_options(ADAM, epochs=10, tol=1e-1),
                                      fresh_info(), theta, state, history)
    assert code == 0 and info["stop_reason"] == 1 and 0 < info["epochs_run"] < 10
    code, refused = uses_gdcore.fit_code(X, y, None, c_options(dict(ADAM, lr=-1.0)), info,
                                         theta, state, history)
    assert code == GD_ERR_OPTIONS
    assert refused["epochs_run"] == 0 and refused["stop_reason"] == 0
    assert {k: refused[k] for k in ("n_updates", "n_epochs", "best_loss")} == \
        {k: info[k] for k in ("n_updates", "n_epochs", "best_loss")}


@needs_compiler
@pytest.mark.parametrize("batch_size", [0, 32])
def test_c_fit_starts_from_a_zeroed_info(uses_gdcore, batch_size):
    """gd_fit_info initialised with {0} (best_loss 0, below every loss) starts a fit as
    best_loss = HUGE_VAL does: the tol rule stopped it after n_iter_no_change epochs."""
    X, y, _ = gdcore.make_regression(300, 4, seed=1)
    runs = []
    for info in (fresh_info(), fresh_info(best_loss=0.0)):
        theta, state, history = np.zeros(5), np.zeros(15), np.zeros(30)
        code, out = uses_gdcore.fit_code(
            X, y, None, c_options(dict(kind=0, lr=0.01), epochs=30, tol=1e-4,
                                  batch_size=batch_size), info, theta, state, history)
        assert code == 0
        runs.append((out, theta, history))
    (fresh, theta, history), (zeroed, zeroed_theta, zeroed_history) = runs
    expected = gdcore.fit(X, y, optimizer="sgd", lr=0.01, epochs=30, tol=1e-4,
                          batch_size=batch_size or None, shuffle=False, n_threads=1,
                          precompute=False)
    assert fresh["epochs_run"] == zeroed["epochs_run"] == expected.n_epochs == 30
    np.testing.assert_array_equal(zeroed_theta, theta)
    np.testing.assert_array_equal(zeroed_history, expected.loss_history)


CXX = (os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++").split()[0]


@pytest.mark.skipif(shutil.which(CXX) is None, reason=f"no C++ compiler ({CXX}) on this machine")
def test_header_compiles_as_strict_cpp(tmp_path):
    """gdcore.h in C++ under -Wold-style-cast (and the usual strict warnings) with Python's
    headers as system headers: the capsule's pointer was cast C-style."""
    source = tmp_path / "uses.cpp"
    source.write_text('#include "gdcore.h"\n'
                      "int main() { return gdcore_import() == nullptr; }\n")
    run = subprocess.run([CXX, "-std=c++17", "-Wall", "-Wextra", "-Wpedantic",
                          "-Wold-style-cast", "-Wconversion", "-Werror", "-fsyntax-only",
                          f"-isystem{sysconfig.get_paths()['include']}",
                          f"-I{gdcore.get_include()}", str(source)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@needs_compiler
@pytest.mark.parametrize("n", [60, 500, 1800, 4000])
def test_c_loss_grad_is_a_fit_epochs_pass_bit_for_bit(uses_gdcore, n):
    """loss_grad's J and g are those of the full-batch epoch at θ, thread cuts included:
    gd with lr = 1 from θ = 0 takes θ₁ = −g.  With 2 threads, n·(d + 1) of 4,000 and 14,400
    (between the full-batch team's and the mini-batch pass's thresholds) ran on one thread,
    and differed in the last bits; 480 and 32,000 are on either side."""
    X, y, _ = problem(n=n, d=7, seed=3)
    code, loss, grad = uses_gdcore.loss_grad_code(X, y, None, np.zeros(8), 1, 2)
    assert code == 0
    fit = gdcore.fit(X, y, optimizer="gd", lr=1.0, epochs=1, tol=None, precompute=False,
                     n_threads=2)
    assert loss == fit.loss_history[0]
    np.testing.assert_array_equal(-np.asarray(grad), np.append(fit.coef, fit.intercept))
    # check_grad's pass (gdcore._core.objective_gradient) is the same pass
    py_loss, py_grad = gdcore._core.objective_gradient(X, y, np.empty(0), np.zeros(8), 0.0,
                                                       0.0, True, 2)
    assert py_loss == loss
    np.testing.assert_array_equal(py_grad, grad)


@needs_compiler
def test_c_loss_grad_may_write_grad_over_theta(uses_gdcore):
    """J's l2 and l1 terms read θ: with grad = theta they read the gradient instead."""
    X, y, _ = problem(n=40, d=3, seed=4)
    theta = np.array([0.3, -0.2, 0.1, 0.5])
    apart = uses_gdcore.loss_grad_code(X, y, None, theta, 1, 1, 0.5, 0.1)
    over = uses_gdcore.loss_grad_code(X, y, None, theta, 1, 1, 0.5, 0.1, True)
    assert apart[0] == over[0] == 0
    assert over[1] == apart[1] and over[2] == apart[2]
    w = theta[:3]
    by_hand = (0.5 * np.mean((X @ w + theta[3] - y) ** 2) + 0.25 * w @ w
               + 0.1 * np.abs(w).sum())
    assert apart[1] == pytest.approx(by_hand, rel=1e-13)


@needs_compiler
def test_c_step_does_not_need_the_optimizers_own_lr(uses_gdcore):
    """step takes its lr apart (already scheduled): optimizer->lr = 0 is not an error."""
    theta, grad, state = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.zeros(6)
    optimizer = every_field(OPTIMIZER_FIELDS, dict(kind=0, lr=0.0))
    assert uses_gdcore.step_code(optimizer, theta, grad, state, 1, 0.1, 0.0) == 0
    np.testing.assert_array_equal(theta, [1.0 - 0.1 * 0.5, 2.0 + 0.1 * 1.0])
    assert uses_gdcore.step_code(optimizer, theta, grad, state, 1, 0.0, 0.0) == GD_ERR_OPTIONS


@needs_compiler
def test_gdcore_import_without_an_interpreter_returns_null(tmp_path):
    """Before Py_Initialize, gdcore_import() returns NULL (it segfaulted in the import)."""
    out = run_embedded(tmp_path, "no_interpreter", textwrap.dedent("""
        #include "gdcore.h"
        #include <stdio.h>
        int main(void)
        {
            printf("before %d\\n", gdcore_import() == NULL);
            Py_Initialize();
            const gdcore_api *api = gdcore_import();
            printf("after %d\\n", api != NULL && api->version_minor >= 6);
            Py_Finalize();
            return 0;
        }
    """))
    assert out.split() == ["before", "1", "after", "1"]


@needs_compiler
@pytest.mark.parametrize("dtype, scale, target", [(np.float64, 1e306, 1.0),
                                                   (np.float32, 1e30, 1e10)])
def test_c_fit_reports_an_overflowing_gradient_as_loss_grad_does(uses_gdcore, dtype, scale,
                                                                 target):
    """Data whose Σ sᵢrᵢxᵢ overflows at θ = 0 (the loss is finite): no learning rate helps,
    as gdcore.fit's DivergenceError says.  loss_grad reports it as GD_ERR_LOSS_NOT_FINITE
    ("try a smaller lr, or rescale the data"); the full-batch fit reported
    GD_ERR_PARAMS_NOT_FINITE ("an update made the parameters non-finite; try a smaller lr"),
    whatever the lr, so a caller retrying with smaller lrs never stopped."""
    X, y, _ = gdcore.make_regression(300, 3, seed=1)
    X, y = (X * scale).astype(dtype), (np.sign(y) * target).astype(dtype)
    with pytest.raises(gdcore.DivergenceError, match="no learning rate can help"):
        gdcore.fit(X, y, optimizer="sgd", lr=1e-30, epochs=5, tol=None, precompute=False,
                   n_threads=1)
    if dtype == np.float64:
        code, loss, _ = uses_gdcore.loss_grad_code(X, y, None, np.zeros(4), 1)
        assert code == GD_ERR_LOSS_NOT_FINITE and np.isfinite(loss)
    for lr in (1e-3, 1e-30):
        theta, state, history = np.zeros(4, dtype), np.zeros(12, dtype), np.zeros(5)
        code, info = uses_gdcore.fit_code(X, y, None, c_options(dict(kind=0, lr=lr), epochs=5),
                                          fresh_info(), theta, state, history)
        assert code == GD_ERR_LOSS_NOT_FINITE
        assert info["n_updates"] == info["epochs_run"] == 0 and not theta.any()


README = Path(__file__).resolve().parent.parent / "README.md"
needs_readme = pytest.mark.skipif(not README.is_file(), reason="no README.md beside tests/")


def readme_example(language, holding):
    """The README's code block in language that holds the text holding, as printed."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = [block for block in blocks if holding in block]
    assert len(found) == 1, f"{len(found)} {language} blocks in README.md hold {holding!r}"
    return found[0]


@pytest.fixture(scope="module")
def readme_losses(tmp_path_factory):
    """README's Cython example, built with README's setup.py, as printed."""
    return build_and_import(tmp_path_factory, "losses", readme_example("cython", "def losses("),
                            readme_example("python", '"losses.pyx"'))


@needs_compiler
@needs_readme
def test_readme_cython_example(readme_losses):
    """README's example gives J at each θ; given a y or thetas of the wrong length it raises
    (it read past their ends: thetas with d columns gave J at θs made of the next row's
    values, the last one past the array, and no error)."""
    X, y, _ = problem(n=80, d=3, seed=9)
    thetas = np.random.default_rng(9).normal(size=(4, 4))
    expected = [0.5 * np.mean((X @ t[:3] + t[3] - y) ** 2) for t in thetas]
    np.testing.assert_allclose(readme_losses.losses(X, y, thetas), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="thetas 4 columns"):
        readme_losses.losses(X, y, thetas[:, :3].copy())
    with pytest.raises(ValueError, match="y needs 80 values"):
        readme_losses.losses(X, y[:40].copy(), thetas)
    thetas[2, 1] = np.nan
    with pytest.raises(ValueError, match="theta holds NaN or infinity"):
        readme_losses.losses(X, y, thetas)


@needs_compiler
@needs_readme
def test_readme_c_example(tmp_path):
    """README's C program, as printed, prints gdcore.fit's fit."""
    out = run_embedded(tmp_path, "readme", readme_example("c", "fit_f64"))
    i = np.arange(1000)
    X = np.column_stack([np.sin(i), np.cos(3.0 * i)])
    y = 0.5 + 2.0 * X[:, 0] - X[:, 1]
    fit = gdcore.fit(X, y, optimizer=gdcore.optim.Adam(lr=0.05), epochs=200, tol=1e-10,
                     n_iter_no_change=5, shuffle=False, precompute=False, n_threads=2)
    assert out.strip() == (f"w = ({fit.coef[0]:g}, {fit.coef[1]:g}), b = {fit.intercept:g} "
                           f"after {fit.n_epochs} epochs")


def c_linkage_at(text, names):
    """For each name, whether its first occurrence in the C++ text lies in an extern "C" { }
    block (a brace-matching scan of preprocessed text, comments gone)."""
    found, stack = {}, []
    for match in re.finditer(r'(?P<c>extern\s*"C"\s*\{)|(?P<open>\{)|(?P<close>\})|\w+', text):
        if match["c"] or match["open"]:
            stack.append(bool(match["c"]))
        elif match["close"]:
            stack.pop()
        elif match.group() in names and match.group() not in found:
            found[match.group()] = any(stack)
    return found


@pytest.mark.skipif(shutil.which(CXX) is None, reason=f"no C++ compiler ({CXX}) on this machine")
def test_header_gives_cpp_callers_c_linkage(tmp_path):
    """The table's function pointers point to C functions: in C++ their types must have C
    language linkage ([dcl.link]: types of different linkage are distinct, and a call through
    the other one is undefined), so the header's declarations sit in extern "C".  (GCC and
    Clang do not tell the two apart; the preprocessed text shows it.)"""
    source = tmp_path / "uses.cpp"
    source.write_text('#include "gdcore.h"\n')
    run = subprocess.run([CXX, "-std=c++17", "-E", "-P",
                          f"-isystem{sysconfig.get_paths()['include']}",
                          f"-I{gdcore.get_include()}", str(source)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    names = ("gd_optimizer", "gd_schedule", "gd_fit_options", "gd_fit_info", "gdcore_api",
             "gdcore_import")
    assert c_linkage_at(run.stdout, names) == dict.fromkeys(names, True)


CONCURRENT_CALLS = textwrap.dedent(r"""
    #include <math.h>
    #include <pthread.h>
    #include <stdio.h>
    #include <string.h>
    #include "gdcore.h"

    enum { N = 6000, D = 8, EPOCHS = 10, JOBS = 4, ROUNDS = 5 };
    static double X[N * D], y[N];
    static float Xf[N * D], yf[N];
    static const gdcore_api *api;

    typedef struct {
        int id, code;
        double theta[D + 1], history[EPOCHS], loss, grad[D + 1];
        float theta32[D + 1];
    } job;

    static void run(job *j)
    {
        static const int kinds[4] = {GD_SGD, GD_ADAM, GD_RMSPROP, GD_ADAGRAD};
        gd_fit_options o;
        memset(&o, 0, sizeof o);
        o.optimizer.kind = kinds[j->id % 4];
        o.optimizer.lr = 0.01;
        o.optimizer.beta1 = 0.9; o.optimizer.beta2 = 0.999; o.optimizer.alpha = 0.99;
        o.optimizer.eps = 1e-8;
        o.schedule.kind = GD_CONSTANT;
        o.epochs = EPOCHS; o.batch_size = j->id & 1 ? 0 : 64; o.fit_intercept = 1;
        o.tol = -1; o.gtol = -1; o.n_iter_no_change = 5; o.n_threads = 2;
        double state[3 * (D + 1)] = {0};
        float state32[3 * (D + 1)] = {0};
        gd_fit_info info = {0}, info32 = {0};
        memset(j->theta, 0, sizeof j->theta);
        memset(j->theta32, 0, sizeof j->theta32);
        j->code = api->fit_f64(X, y, NULL, N, D, &o, j->theta, state, j->history, &info)
                  | api->loss_grad_f64(X, y, NULL, N, D, j->theta, 0.1, 0.0, 1, 2, &j->loss,
                                       j->grad)
                  | api->fit_f32(Xf, yf, NULL, N, D, &o, j->theta32, state32, j->history,
                                 &info32);
    }

    static void *worker(void *arg) { run((job *)arg); return NULL; }

    static int same(const job *a, const job *b)
    {
        return a->code == 0 && b->code == 0 && !memcmp(a->theta, b->theta, sizeof a->theta)
               && !memcmp(a->grad, b->grad, sizeof a->grad) && a->loss == b->loss
               && !memcmp(a->theta32, b->theta32, sizeof a->theta32);
    }

    int main(void)
    {
        for (int i = 0; i < N; i++) {
            for (int k = 0; k < D; k++) X[i * D + k] = ((i * 7 + k * 13) % 97 - 48) / 64.0;
            y[i] = 1.0 + X[i * D] - 0.5 * X[i * D + 3];
        }
        for (int i = 0; i < N * D; i++) Xf[i] = (float)X[i];
        for (int i = 0; i < N; i++) yf[i] = (float)y[i];
        Py_Initialize();
        api = gdcore_import();
        if (api == NULL) { PyErr_Print(); return 10; }
        PyThreadState *saved = PyEval_SaveThread();
        job alone[JOBS], together[JOBS];
        pthread_t threads[JOBS];
        int mismatches = 0;
        for (int k = 0; k < JOBS; k++) { alone[k].id = together[k].id = k; run(&alone[k]); }
        for (int round = 0; round < ROUNDS; round++) {
            for (int k = 0; k < JOBS; k++) pthread_create(&threads[k], NULL, worker, &together[k]);
            for (int k = 0; k < JOBS; k++) pthread_join(threads[k], NULL);
            for (int k = 0; k < JOBS; k++) mismatches += !same(&alone[k], &together[k]);
        }
        PyEval_RestoreThread(saved);
        printf("mismatches %d of %d\n", mismatches, JOBS * ROUNDS);
        Py_Finalize();
        return 0;
    }
""")


@needs_compiler
def test_c_api_calls_from_several_threads_at_once(tmp_path):
    """gdcore.h: several native threads may call the functions at once (each with its own
    theta, state, history and info; X and y shared), and get the bits of calls made one
    after another: fits of four optimizers, full-batch and mini-batch, float64 and float32,
    with 2 OpenMP threads each, and loss_grad."""
    out = run_embedded(tmp_path, "concurrent", CONCURRENT_CALLS, ["-pthread"])
    assert out.split() == ["mismatches", "0", "of", "20"]


NAN, INF = float("nan"), float("inf")
GD_ERR_NULL, GD_ERR_SHAPE, GD_ERR_PARAMS_NOT_FINITE = 1, 2, 7


@needs_compiler
@pytest.mark.parametrize("change, code, why", [
    (dict(X_nan=True), GD_ERR_INPUT, "X holds NaN or infinity"),
    (dict(y_inf=True), GD_ERR_INPUT, "y holds NaN or infinity"),
    (dict(weights=-np.ones(300)), GD_ERR_WEIGHTS, "a weight is negative"),
    (dict(weights=np.zeros(300)), GD_ERR_WEIGHTS, "the weights sum to 0"),
    (dict(weights=np.full(300, 1e307)), GD_ERR_WEIGHTS, "the weights' sum overflows"),
    (dict(optimizer=dict(kind=9, lr=0.1)), GD_ERR_OPTIONS, "the optimizer's kind is not"),
    (dict(optimizer=dict(ADAM, lr=-1.0)), GD_ERR_OPTIONS, "the optimizer's lr must be"),
    (dict(optimizer=dict(ADAM, beta2=1.0)), GD_ERR_OPTIONS, "the optimizer's beta2 must be"),
    (dict(optimizer=dict(ADAM, eps=0.0)), GD_ERR_OPTIONS, "the optimizer's eps must be"),
    (dict(optimizer=dict(kind=0, lr=0.1, nesterov=1)), GD_ERR_OPTIONS,
     "nesterov needs momentum > 0"),
    (dict(optimizer=dict(kind=2, lr=0.1, alpha=1.5, eps=1e-8)), GD_ERR_OPTIONS,
     "the optimizer's alpha must be in [0, 1)"),
    (dict(schedule=dict(kind=1, step_size=2.5, gamma=0.5)), GD_ERR_OPTIONS,
     "the schedule's step_size must be a whole number"),
    (dict(schedule=dict(kind=4, start_factor=0.0, end_factor=1.0, total_iters=3)),
     GD_ERR_OPTIONS, "the schedule's start_factor must be in (0, 1]"),
    (dict(options=dict(epochs=0)), GD_ERR_OPTIONS, "options->epochs must be >= 1"),
    (dict(options=dict(batch_size=-1)), GD_ERR_OPTIONS, "options->batch_size must be >= 0"),
    (dict(options=dict(l2=NAN)), GD_ERR_OPTIONS, "options->l2 must be finite"),
    (dict(options=dict(l1=0.1)), GD_ERR_OPTIONS, "l1 > 0 needs GD_SGD"),
    (dict(options=dict(n_iter_no_change=0)), GD_ERR_OPTIONS, "options->n_iter_no_change"),
    (dict(options=dict(n_threads=0)), GD_ERR_OPTIONS, "n_threads must be 1 .."),
    (dict(options=dict(tol=NAN)), GD_ERR_OPTIONS, "options->tol must not be NaN"),
    (dict(options=dict(gtol=0.0, batch_size=32)), GD_ERR_OPTIONS,
     "options->gtol >= 0 needs a full batch"),
    (dict(theta0=NAN), GD_ERR_INPUT, "theta holds NaN"),
    (dict(options=dict(fit_intercept=0), intercept=1.0), GD_ERR_INPUT,
     "theta[d] (the intercept) must be 0"),
    (dict(state0=NAN), GD_ERR_INPUT, "state holds NaN"),
    (dict(info=fresh_info(n_updates=-1)), GD_ERR_INFO, "info->n_updates must be >= 0"),
    (dict(info=fresh_info(n_epochs=5, best_loss=NAN)), GD_ERR_INFO, "info->best_loss"),
    (dict(info=fresh_info(n_epochs=2 ** 62 - 5)), GD_ERR_INFO, "options->epochs more epochs"),
])
def test_c_fit_says_which_argument_it_refused(uses_gdcore, change, code, why):
    """api->last_error() names the argument or field a refused fit broke the rule of, and the
    rule (strerror(code) only names the kind of problem: GD_ERR_OPTIONS for any of ~25
    hyper-parameters); gdcore.fit's ValueError names it too."""
    X, y, _ = gdcore.make_regression(300, 4, seed=1)
    if change.get("X_nan"):
        X = X.copy()
        X[7, 2] = NAN
    if change.get("y_inf"):
        y = y.copy()
        y[3] = INF
    theta, state, history = np.zeros(5), np.zeros(15), np.zeros(10)
    theta[0] = change.get("theta0", 0.0)
    theta[4] = change.get("intercept", 0.0)
    state[2] = change.get("state0", 0.0)
    options = c_options(change.get("optimizer", ADAM), change.get("schedule"),
                        **change.get("options", {}))
    got, _ = uses_gdcore.fit_code(X, y, change.get("weights"), options,
                                  change.get("info", fresh_info()), theta, state, history)
    assert got == code
    assert why in uses_gdcore.last_error()


@needs_compiler
def test_c_step_and_loss_grad_say_which_argument_they_refused(uses_gdcore):
    X, y, _ = gdcore.make_regression(50, 3, seed=8)
    sgd = every_field(OPTIMIZER_FIELDS, dict(kind=0))
    adam = every_field(OPTIMIZER_FIELDS, ADAM)
    grad, state = np.ones(4), np.zeros(12)
    cases = [
        (lambda: uses_gdcore.step_code(sgd, np.ones(1), np.ones(1), np.zeros(3), 1, 0.1, 0.0),
         GD_ERR_SHAPE, "d must be >= 1"),
        (lambda: uses_gdcore.step_code(sgd, np.ones(4), grad, state, 0, 0.1, 0.0),
         GD_ERR_OPTIONS, "t (the update count) must be >= 1"),
        (lambda: uses_gdcore.step_code(sgd, np.ones(4), grad, state, 1, 0.0, 0.0),
         GD_ERR_OPTIONS, "lr must be finite and > 0"),
        (lambda: uses_gdcore.step_code(adam, np.ones(4), grad, state, 1, 0.1, 0.5),
         GD_ERR_OPTIONS, "l1 > 0 needs GD_SGD"),
        (lambda: uses_gdcore.step_code(sgd, np.ones(4), np.full(4, NAN), state, 1, 0.1, 0.0),
         GD_ERR_INPUT, "grad holds NaN or infinity"),
        (lambda: uses_gdcore.step_code(sgd, np.ones(4), np.full(4, 1e308), state, 1, 1e10,
                                       0.0),
         GD_ERR_PARAMS_NOT_FINITE, "the update made theta non-finite"),
        (lambda: uses_gdcore.loss_grad_code(X, y, None, np.ones(4), 1, 1, -1.0)[0],
         GD_ERR_OPTIONS, "l2 must be finite and >= 0"),
        (lambda: uses_gdcore.loss_grad_code(X, y, None, np.ones(4), 1, 2000)[0],
         GD_ERR_OPTIONS, "n_threads must be 1 .."),
        (lambda: uses_gdcore.loss_grad_code(X * 1e160, y, None, np.ones(4), 1)[0],
         GD_ERR_LOSS_NOT_FINITE, "J at theta overflows"),
    ]
    for call, code, why in cases:
        assert call() == code
        assert why in uses_gdcore.last_error(), why


@needs_compiler
@pytest.mark.parametrize("dtype, scale, target, lr, why", [
    (np.float64, 1e306, 1.0, 1e-30, "the gradient is not finite at the theta this call "
                                    "started from, before any update, whatever the lr"),
    (np.float32, 1e30, 1e10, 1e-30, "the gradient is not finite at the theta this call "
                                    "started from"),
    (np.float64, 1.0, 1e160, 1e-3, "the loss is not finite at the theta this call started "
                                   "from"),
    (np.float64, 100.0, 1.0, 5.0, "the fit diverged: the loss or the gradient stopped being "
                                  "finite"),
])
def test_c_fit_says_whether_a_divergence_is_the_lrs(uses_gdcore, dtype, scale, target, lr,
                                                    why):
    """As gdcore.fit's DivergenceError: before any update no lr helps; after, a smaller one."""
    X, y, _ = gdcore.make_regression(300, 3, seed=1)
    X, y = (X * scale).astype(dtype), (y * target).astype(dtype)
    theta, state, history = np.zeros(4, dtype), np.zeros(12, dtype), np.zeros(2000)
    # another refusal first: the message checked below is this fit's, not one left over
    assert uses_gdcore.loss_grad_code(np.ones((2, 1)), np.ones(2), None, np.zeros(2), 1,
                                      1025)[0] == GD_ERR_OPTIONS
    assert why not in uses_gdcore.last_error()
    code, _ = uses_gdcore.fit_code(X, y, None, c_options(dict(kind=0, lr=lr), epochs=2000),
                                   fresh_info(), theta, state, history)
    assert code == GD_ERR_LOSS_NOT_FINITE
    assert why in uses_gdcore.last_error()


@needs_compiler
def test_c_last_error_is_the_calling_threads(uses_gdcore):
    """A refusal on another thread leaves this thread's last_error as it was."""
    X, y, _ = gdcore.make_regression(50, 3, seed=8)
    assert uses_gdcore.loss_grad_code(X, y, None, np.full(4, NAN), 1)[0] == GD_ERR_INPUT
    assert uses_gdcore.last_error() == "theta holds NaN or infinity"
    seen = []

    def other():
        seen.append(uses_gdcore.last_error())
        seen.append(uses_gdcore.loss_grad_code(X, y, None, np.ones(4), 1, 0)[0])
        seen.append(uses_gdcore.last_error())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == ["", GD_ERR_OPTIONS, "n_threads must be 1 .. GDCORE_MAX_THREADS (1024)"]
    assert uses_gdcore.last_error() == "theta holds NaN or infinity"
    assert uses_gdcore.loss_grad_code(X, y, None, np.ones(4), 1)[0] == 0    # GD_OK keeps it
    assert uses_gdcore.last_error() == "theta holds NaN or infinity"



@needs_compiler
def test_c_step_applies_adagrads_lr_decay_from_t(uses_gdcore):
    """gdcore.h: step decays Adagrad's lr itself, from t (torch.optim.Adagrad's rule), so the
    caller passes the undecayed lr."""
    theta, grad, state = np.ones(3), np.array([0.5, -1.0, 2.0]), np.zeros(9)
    optimizer = every_field(OPTIMIZER_FIELDS, dict(kind=1, lr_decay=0.5, eps=1e-10))
    state[:3] = 4.0
    assert uses_gdcore.step_code(optimizer, theta, grad, state, 3, 0.1, 0.0) == 0
    total = 4.0 + grad ** 2
    clr = 0.1 / (1 + (3 - 1) * 0.5)
    np.testing.assert_allclose(theta, 1.0 - clr * grad / (np.sqrt(total) + 1e-10), rtol=1e-15)


@needs_compiler
def test_c_fit_stopped_by_tol_is_not_always_converged(uses_gdcore):
    """gdcore.h: GD_STOP_TOL with the last loss above 2·best_loss + tol is what gdcore.fit
    calls not converged (ConvergenceWarning): the C fit stops at the same epoch with the same
    losses, so the caller's check agrees with FitResult.converged."""
    X, y, _ = gdcore.make_regression(300, 4, seed=1)
    theta, state, history = np.zeros(5), np.zeros(15), np.zeros(100)
    code, info = uses_gdcore.fit_code(X, y, None, c_options(dict(kind=0, lr=2.5), epochs=100,
                                                          tol=1e-4, n_iter_no_change=3),
                                      fresh_info(), theta, state, history)
    with pytest.warns(gdcore.ConvergenceWarning):
        expected = gdcore.fit(X, y, optimizer="sgd", lr=2.5, epochs=100, tol=1e-4,
                              n_iter_no_change=3, precompute=False, n_threads=1)
    assert code == 0 and info["stop_reason"] == 1 and not expected.converged
    np.testing.assert_array_equal(history[:info["epochs_run"]], expected.loss_history)
    assert history[info["epochs_run"] - 1] > 2 * info["best_loss"] + 1e-4



@needs_compiler
def test_c_api_refuses_sizes_no_buffer_can_have(uses_gdcore):
    """Sizes whose buffers could not exist (n·d values past PY_SSIZE_T_MAX bytes, or a d whose
    per-thread copies could not be allocated) give GD_ERR_SHAPE.  Their products wrapped
    around, and the checks read past the caller's buffers (n = d = 2⁴⁰: a segfault in
    loss_grad, reading y; d = 2⁶²: in step, reading theta), or allocated too little.  Run in a
    child Python: the old code crashed.  (A size that could exist but is larger than the
    caller's buffer is the caller's to get right: nothing can tell.)"""
    folder = os.path.dirname(uses_gdcore.__file__)
    cases = [(2, 3, True), (2 ** 40, 2 ** 40, False), (2 ** 61, 4, False), (4, 2 ** 62, True),
             (3, 2 ** 50, True)]
    child = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         f"import uses_gdcore as u; print([u.codes_for_sizes(*c) for c in {cases}])", folder],
        capture_output=True, text=True, env=subprocess_env())
    assert child.returncode == 0, child.stderr[-2000:]
    got = eval(child.stdout)
    assert [codes for codes, _ in got] == [[0, 0, 0], [GD_ERR_SHAPE] * 2, [GD_ERR_SHAPE] * 2,
                                           [GD_ERR_SHAPE] * 3, [GD_ERR_SHAPE] * 3]
    assert "no buffer" in got[1][1] and "no buffer" in got[-1][1]


@needs_compiler
@pytest.mark.parametrize("n_threads", [1, 2, 3, 7])
def test_c_api_finds_nan_in_any_threads_part(uses_gdcore, n_threads):
    """X, y and weights are checked for NaN/inf on the call's threads (one thread made a
    loss_grad call cost twice its pass): a bad value at either end of any thread's part, or
    past a weight's, is found by loss_grad and by fit, which name the array."""
    # past PARALLEL_MIN_WORK (16,384) values each, so X, y and the weights are all cut into
    # parts, of uneven length
    X, y, _ = gdcore.make_regression(17001, 2, seed=3)
    weights = np.linspace(0.5, 2.0, len(y))
    theta = np.zeros(3)
    clean = uses_gdcore.loss_grad_code(X, y, weights, theta, 1, n_threads)
    assert clean[0] == 0    # J at θ = 0: the weighted mean of y²/2
    assert clean[1] == pytest.approx(0.5 * np.sum(weights * y * y) / weights.sum(), rel=1e-12)
    options = c_options(dict(kind=0, lr=0.01), epochs=1, n_threads=n_threads)
    for name, array in (("X", X.reshape(-1)), ("y", y), ("weights", weights)):
        size = array.size
        edges = {0, size - 1}
        for part in range(1, n_threads):
            start = part * -(-size // n_threads)
            edges |= {start - 1, start} & set(range(size))
        for where in sorted(edges):
            for bad in (np.nan, np.inf):
                data = {"X": X.copy(), "y": y.copy(), "weights": weights.copy()}
                data[name].reshape(-1)[where] = bad
                code = uses_gdcore.loss_grad_code(data["X"], data["y"], data["weights"],
                                                  theta, 1, n_threads)[0]
                assert code == GD_ERR_INPUT, (name, where, bad)
                assert uses_gdcore.last_error().startswith(name), uses_gdcore.last_error()
                code = uses_gdcore.fit_code(data["X"], data["y"], data["weights"], options,
                                            fresh_info(), np.zeros(3), np.zeros(9),
                                            np.zeros(1))[0]
                assert code == GD_ERR_INPUT, (name, where, bad)
