/*
 * gdcore.h -- the C API of gdcore's compiled core (gdcore._core).
 *
 * The functions live in the Python extension gdcore._core and are reached through a table
 * of function pointers published as the PyCapsule gdcore._core._C_API (as numpy.random
 * does).  gdcore_import() imports the module and returns the table; it needs an
 * initialised interpreter and the GIL, once.  The functions themselves never touch Python:
 * call them from any thread, with or without the GIL, and from several threads at once
 * (each call works in its own memory and keeps no state between calls that changes its
 * results: concurrent calls may share X, y and weights, which are only read, but not
 * theta, grad, state, history or info).  They report problems through their
 * return code (GD_OK on success; api->strerror(code) says what went wrong, and
 * api->last_error() which argument or field, since 1.6), never by raising,
 * aborting or leaving a Python exception pending, and they validate every argument.
 *
 * ABI promise: within a major version, the layout of every struct here and the order of the
 * table's entries do not change; minor versions append entries at the end of the table or
 * return codes, or make an entry refuse or report what it should have (the "since 1.x"
 * notes below; README lists each version).
 * Check api->version_major == GDCORE_API_VERSION_MAJOR and api->version_minor >=
 * GDCORE_API_VERSION_MINOR (gdcore_import() does: a table older than this header may lack
 * entries, or refuse less, than the header describes).
 */
#ifndef GDCORE_H
#define GDCORE_H

#include <Python.h>

#ifdef __cplusplus
extern "C" {    /* (since 1.6) C language linkage for the table's function types */
#endif

#define GDCORE_API_VERSION_MAJOR 1
#define GDCORE_API_VERSION_MINOR 6
#define GDCORE_CAPSULE_NAME "gdcore._core._C_API"

/* (since 1.3) The most threads one call takes: OpenMP cannot report a team it fails to
 * start (libgomp ends the process), so larger n_threads give GD_ERR_OPTIONS.  Below it a
 * team the system refuses to start (under an address-space or process limit, ulimit -v or
 * -u) still ends the process: ask for no more threads than the machine has cores. */
#define GDCORE_MAX_THREADS 1024
/* (since 1.3) gd_fit_info's counters stay below this (2^62), so they cannot overflow; (since
 * 1.4) a fit whose epochs could take n_epochs or n_updates there gives GD_ERR_INFO. */
#define GDCORE_MAX_COUNT 4611686018427387904LL

/* return codes */
#define GD_OK 0
#define GD_ERR_NULL 1            /* a required pointer is NULL */
#define GD_ERR_SHAPE 2           /* n < 1 or d < 1, or (since 1.6) sizes no buffer can
                                  * have: n * d values past PY_SSIZE_T_MAX bytes, or d above
                                  * PY_SSIZE_T_MAX / 65600 (~1.4e14).  (Sizes larger than
                                  * the caller's buffers cannot be seen: they are the
                                  * caller's to get right.) */
#define GD_ERR_INPUT 3           /* NaN or inf in X, y, weights, theta or (step) grad; NaN
                                  * in state (inf is a state a fit can go on from);
                                  * theta[d] != 0 with fit_intercept = 0 */
#define GD_ERR_WEIGHTS 4         /* a negative weight, or weights summing to 0 or to inf, or
                                  * (since 1.3) spanning more than the type's range: a positive
                                  * weight that is 0 once the largest is scaled near 1 */
#define GD_ERR_OPTIONS 5         /* a hyper-parameter out of range, or an unknown kind */
#define GD_ERR_LOSS_NOT_FINITE 6 /* J or g not finite in the data's type: from a fit, it
                                  * diverged (theta: last finite), or, with no update made
                                  * (info->n_updates unchanged), the data (or the theta it
                                  * started from) overflow whatever the lr; (since 1.6) a
                                  * fit's overflowing gradient too (api->last_error says
                                  * which) */
#define GD_ERR_PARAMS_NOT_FINITE 7 /* the fit diverged: an update overflowed (theta: last
                                  * finite); (before 1.6 also an overflowing gradient) */
#define GD_ERR_NO_MEMORY 8
#define GD_ERR_INFO 9            /* (since 1.1) info's counters out of range: see gd_fit_info
                                  * (since 1.4: or the fit's epochs would take them out) */

/* optimizer kinds (torch.optim's rules and defaults; see gdcore.optim) */
#define GD_SGD 0
#define GD_ADAGRAD 1
#define GD_RMSPROP 2
#define GD_ADAM 3
#define GD_NORMALIZED 4

/* schedule kinds (see gdcore.schedules) */
#define GD_CONSTANT 0
#define GD_STEP 1
#define GD_EXPONENTIAL 2
#define GD_COSINE 3
#define GD_LINEAR 4
#define GD_INVSCALING 5

/* stop reasons.  GD_STOP_TOL says the tol rule fired, not that the fit converged: the rule
 * also stops a loss that grows or swings.  gdcore.fit calls such a fit not converged (and
 * warns) when the last loss is above 2 * best_loss + tol: compare history[epochs_run - 1]
 * with info->best_loss the same way. */
#define GD_STOP_EPOCHS 0
#define GD_STOP_TOL 1
#define GD_STOP_GTOL 2

typedef struct {
    int kind;
    double lr;
    double momentum, dampening; int nesterov;                 /* GD_SGD */
    double lr_decay, initial_accumulator_value;              /* GD_ADAGRAD */
    double alpha;                                             /* GD_RMSPROP */
    double eps;                                               /* ADAGRAD, RMSPROP, ADAM, NORMALIZED */
    int centered;                                             /* GD_RMSPROP (momentum above) */
    double beta1, beta2; int amsgrad;                         /* GD_ADAM */
} gd_optimizer;

typedef struct {
    int kind;
    /* step_size, T_max and total_iters count epochs: whole numbers >= 1 */
    double step_size, gamma, T_max, eta_min, start_factor, end_factor, total_iters, power_t;
} gd_schedule;

typedef struct {
    gd_optimizer optimizer;
    gd_schedule schedule;
    long long epochs;           /* >= 1 */
    long long batch_size;       /* 0 (or >= n): full batch; else rows in order, one update a batch */
    double l2, l1;              /* >= 0; l1 only with GD_SGD */
    int fit_intercept;
    double tol;                 /* < 0: off; NaN or +inf: GD_ERR_OPTIONS (since 1.3) */
    long long n_iter_no_change;
    double gtol;                /* < 0: off; full batch only; NaN or +inf: GD_ERR_OPTIONS */
    int n_threads;              /* 1 .. GDCORE_MAX_THREADS */
} gd_fit_options;

/* Counters of a fit: in/out, so a fit can be continued exactly (start from all zeros and
 * best_loss = HUGE_VAL; since 1.4, while n_epochs is 0 best_loss and n_no_improvement are
 * taken as HUGE_VAL and 0, so an info initialised with {0}, or {} in C++, starts a fit too; counters below 0
 * or at least GDCORE_MAX_COUNT, or a best_loss that is NaN or < 0, give GD_ERR_INFO).  To go on after GD_STOP_TOL, set n_no_improvement to 0 (as
 * gdcore.fit does when it continues a result the tol rule stopped); left as it is, the next
 * epoch without improvement stops the fit again. */
typedef struct {
    long long n_updates, n_epochs, n_no_improvement;
    double best_loss;
    long long epochs_run;       /* out: epochs run by this call (entries written to history;
                                 * since 1.4, 0 when the call is refused) */
    int stop_reason;            /* out: GD_STOP_* (GD_STOP_EPOCHS when refused, since 1.4) */
} gd_fit_info;

typedef struct {
    int version_major, version_minor;
    /* J and g = (grad w, d b) at theta = (w, b) from one fused pass over the rows of X (n x d,
     * C order); weights may be NULL (all 1; weights at any scale give the fit of weights
     * scaled near 1, as in gdcore.fit); grad has d + 1 entries.  GD_ERR_LOSS_NOT_FINITE (loss
     * and grad still written) when J or g overflows the data's type.  J includes l1*||w||_1 but
     * g leaves out its subgradient l1*sign(w), since step applies l1 as a proximal step: add
     * l1*sign(w_j) to g[j] (j < d) for a subgradient of J.  The pass cuts the rows among
 * n_threads as a full-batch fit's epoch does: the same bits as that epoch's J and g (since
 * 1.5; before, from 3,072 to 16,384 multiply-adds it ran on one thread).  (since 1.5) grad
 * may be theta itself. */
    int (*loss_grad_f64)(const double *X, const double *y, const double *weights,
                         Py_ssize_t n, Py_ssize_t d, const double *theta, double l2, double l1,
                         int fit_intercept, int n_threads, double *loss, double *grad);
    int (*loss_grad_f32)(const float *X, const float *y, const float *weights,
                         Py_ssize_t n, Py_ssize_t d, const float *theta, double l2, double l1,
                         int fit_intercept, int n_threads, double *loss, float *grad);
    /* One update of theta (d + 1) from grad, with state (3 x (d + 1), zeros at first; at
     * t = 1 Adagrad's sum, state[0 .. d], is set to initial_accumulator_value), at update
     * count t >= 1 and learning rate lr (already scheduled; optimizer->lr is not used, and
     * since 1.5 not checked either); l1 (GD_SGD only): proximal step.  Adagrad's lr_decay is
     * applied here, from t (lr / (1 + (t - 1) lr_decay), as torch.optim.Adagrad's step does):
     * pass the schedule's lr, not one already decayed.
     * On GD_ERR_PARAMS_NOT_FINITE theta is restored but state has taken the update: keep a
     * copy of state to retry from it. */
    int (*step_f64)(const gd_optimizer *optimizer, double *theta, const double *grad,
                    double *state, Py_ssize_t d, int fit_intercept, long long t, double lr,
                    double l1);
    int (*step_f32)(const gd_optimizer *optimizer, float *theta, const float *grad,
                    float *state, Py_ssize_t d, int fit_intercept, long long t, double lr,
                    double l1);
    /* A whole fit: theta (d + 1) and state (3 x (d + 1), zeros at first; when
     * info->n_updates is 0 Adagrad's sum is set to initial_accumulator_value) in/out, history
     * gets one loss per epoch (room for options->epochs), info in/out.  Mini-batches take rows in order (no
     * shuffling: permute X yourself between calls of epochs = 1 for shuffled epochs).
     * On GD_ERR_LOSS_NOT_FINITE or GD_ERR_PARAMS_NOT_FINITE theta holds the last finite
     * parameters, history and info the epochs and updates up to them; state may have taken
     * the refused update, as step's does: to retry (with a smaller lr, say) start again from
     * zeros, or from a copy of state. */
    int (*fit_f64)(const double *X, const double *y, const double *weights, Py_ssize_t n,
                   Py_ssize_t d, const gd_fit_options *options, double *theta, double *state,
                   double *history, gd_fit_info *info);
    int (*fit_f32)(const float *X, const float *y, const float *weights, Py_ssize_t n,
                   Py_ssize_t d, const gd_fit_options *options, float *theta, float *state,
                   double *history, gd_fit_info *info);
    const char *(*strerror)(int code);
    /* (since 1.6) Why this thread's latest call that returned a GD_ERR_* code returned it: a
     * sentence naming the argument or field and the rule it broke ("the optimizer's eps must
     * be finite and > 0", "options->gtol >= 0 needs a full batch (batch_size 0 or >= n)",
     * "y holds NaN or infinity"), or, for a fit that diverged, whether before any update
     * (then no lr helps).  Calls that return GD_OK leave it as it was ("" before any error);
     * the string is static, and stays valid. */
    const char *(*last_error)(void);
} gdcore_api;

/* Import gdcore._core and return its API table, or NULL with a Python exception set (NULL
 * with none when no interpreter is initialised: call Py_Initialize first).
 * (static inline: a file that includes this header without calling it gets no warning.) */
static inline const gdcore_api *gdcore_import(void)
{
    const gdcore_api *api;
    PyObject *capsule, *module;
    if (!Py_IsInitialized())
        return NULL;
    module = PyImport_ImportModule("gdcore._core");
    if (module == NULL)
        return NULL;
    capsule = PyObject_GetAttrString(module, "_C_API");
    Py_DECREF(module);
    if (capsule == NULL)
        return NULL;
#ifdef __cplusplus
    api = static_cast<const gdcore_api *>(PyCapsule_GetPointer(capsule, GDCORE_CAPSULE_NAME));
#else
    api = (const gdcore_api *)PyCapsule_GetPointer(capsule, GDCORE_CAPSULE_NAME);
#endif
    Py_DECREF(capsule);  /* the module keeps the capsule, and the table, alive */
    if (api != NULL && (api->version_major != GDCORE_API_VERSION_MAJOR
                        || api->version_minor < GDCORE_API_VERSION_MINOR)) {
        PyErr_Format(PyExc_ImportError, "gdcore C API version %d.%d, this caller was built "
                     "for %d.%d or a later %d.x: %s", api->version_major, api->version_minor,
                     GDCORE_API_VERSION_MAJOR, GDCORE_API_VERSION_MINOR,
                     GDCORE_API_VERSION_MAJOR,
                     api->version_major > GDCORE_API_VERSION_MAJOR
                     ? "rebuild this caller against the installed gdcore's headers "
                       "(gdcore.get_include())"
                     : "install a gdcore at least as new as the headers it was built with");
        return NULL;
    }
    return api;
}

#ifdef __cplusplus
}
#endif

#endif /* GDCORE_H */
