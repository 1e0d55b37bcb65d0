# The C API (gdcore/include/gdcore.h): the core's kernels on raw buffers, for C, C++ and
# Cython callers, published as the capsule gdcore._core._C_API.
#
# Everything here is nogil and reports through return codes: arguments are validated in C
# (the Python layer is not in the way), then the same cdef functions as gdcore.fit run.

from cpython.pycapsule cimport PyCapsule_New
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.math cimport HUGE_VAL, floor, frexp, ldexp

from gdcore.capi cimport (GDCORE_API_VERSION_MAJOR, GDCORE_API_VERSION_MINOR,
                          GDCORE_MAX_COUNT, GD_OK,
                          GD_ERR_NULL, GD_ERR_SHAPE, GD_ERR_INPUT, GD_ERR_WEIGHTS,
                          GD_ERR_OPTIONS, GD_ERR_LOSS_NOT_FINITE, GD_ERR_PARAMS_NOT_FINITE,
                          GD_ERR_NO_MEMORY, GD_ERR_INFO, gd_fit_options, gd_fit_info,
                          gdcore_api)


cdef extern from *:
    """
    /* Why this thread's last call of the C API that did not return GD_OK returned its code:
     * a static sentence naming the argument or field (api->last_error, since 1.6). */
    static __thread const char *gd_capi_last_error = "";
    static const char *gd_capi_get_last_error(void) { return gd_capi_last_error; }
    static int gd_capi_refuse(int code, const char *why) {
        gd_capi_last_error = why;
        return code;
    }
    """
    const char* capi_last_error "gd_capi_get_last_error"() noexcept nogil
    int refuse "gd_capi_refuse"(int code, const char* why) noexcept nogil


cdef const char* capi_strerror(int code) noexcept nogil:
    if code == GD_OK:
        return "success"
    if code == GD_ERR_NULL:
        return "a required pointer argument is NULL"
    if code == GD_ERR_SHAPE:
        return "n and d must be >= 1, and sizes a buffer can have"
    if code == GD_ERR_INPUT:
        return "X, y, weights, theta or grad contain NaN or infinity, state contains NaN, or theta's intercept is not 0 with fit_intercept = 0"
    if code == GD_ERR_WEIGHTS:
        return "weights must be >= 0 with a positive, finite sum, and span no more than the type's range"
    if code == GD_ERR_OPTIONS:
        return "an option is out of range or names an unknown optimizer or schedule kind"
    if code == GD_ERR_LOSS_NOT_FINITE:
        return "diverged: the loss or the gradient is not finite (a fit's theta holds the last finite values); try a smaller lr, or, if no update was made, rescale the data"
    if code == GD_ERR_PARAMS_NOT_FINITE:
        return "diverged: an update with a finite gradient made the parameters non-finite (theta holds the last finite values); try a smaller lr"
    if code == GD_ERR_NO_MEMORY:
        return "out of memory"
    if code == GD_ERR_INFO:
        return "info's counters are out of range (n_updates, n_epochs and n_no_improvement must be >= 0 and below GDCORE_MAX_COUNT, best_loss >= 0 or HUGE_VAL), or options->epochs more epochs would take n_epochs or n_updates to GDCORE_MAX_COUNT"
    return "unknown gdcore error code"


cdef inline bint bad_real(double value, double low, bint low_open) noexcept nogil:
    if not isfinite(value):
        return True
    return value <= low if low_open else value < low


cdef inline bint bad_thread_count(int n_threads) noexcept nogil:
    return n_threads < 1 or n_threads > GDCORE_MAX_THREADS


cdef inline bint bad_counter(long long count) noexcept nogil:
    """A gd_fit_info counter out of range (one that could overflow as the fit counts on)."""
    return count < 0 or count >= GDCORE_MAX_COUNT


cdef int check_optimizer(const gd_optimizer* o, bint uses_lr=True) noexcept nogil:
    """uses_lr: o.lr is the rate (fit); step takes its lr, already scheduled, apart."""
    if o == NULL:
        return refuse(GD_ERR_NULL, "optimizer is NULL")
    if o.kind < 0 or o.kind > 4:
        return refuse(GD_ERR_OPTIONS, "the optimizer's kind is not GD_SGD, GD_ADAGRAD, "
                                      "GD_RMSPROP, GD_ADAM or GD_NORMALIZED")
    if uses_lr and bad_real(o.lr, 0.0, True):
        return refuse(GD_ERR_OPTIONS, "the optimizer's lr must be finite and > 0")
    if (o.kind == 0 or o.kind == 2) and bad_real(o.momentum, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "the optimizer's momentum must be finite and >= 0")
    if o.kind == 0 and not isfinite(o.dampening):
        return refuse(GD_ERR_OPTIONS, "the optimizer's dampening must be finite")
    if o.kind == 0 and o.nesterov and (o.momentum <= 0.0 or o.dampening != 0.0):
        return refuse(GD_ERR_OPTIONS, "nesterov needs momentum > 0 and dampening = 0")
    if o.kind == 1 and bad_real(o.lr_decay, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "the optimizer's lr_decay must be finite and >= 0")
    if o.kind == 1 and bad_real(o.initial_accumulator_value, 0.0, False):
        return refuse(GD_ERR_OPTIONS,
                      "the optimizer's initial_accumulator_value must be finite and >= 0")
    if o.kind == 2 and (bad_real(o.alpha, 0.0, False) or o.alpha >= 1.0):
        return refuse(GD_ERR_OPTIONS, "the optimizer's alpha must be in [0, 1)")
    if o.kind == 3 and (bad_real(o.beta1, 0.0, False) or o.beta1 >= 1.0):
        return refuse(GD_ERR_OPTIONS, "the optimizer's beta1 must be in [0, 1)")
    if o.kind == 3 and (bad_real(o.beta2, 0.0, False) or o.beta2 >= 1.0):
        return refuse(GD_ERR_OPTIONS, "the optimizer's beta2 must be in [0, 1)")
    if o.kind != 0 and bad_real(o.eps, 0.0, True):
        return refuse(GD_ERR_OPTIONS, "the optimizer's eps must be finite and > 0")
    return GD_OK


cdef inline bint bad_count(double value) noexcept nogil:
    """Not a whole number >= 1 (the sizes of schedules count epochs, as in gdcore.schedules)."""
    return bad_real(value, 1.0, False) or value != floor(value)


cdef int check_schedule(const gd_schedule* s) noexcept nogil:
    if s.kind < 0 or s.kind > 5:
        return refuse(GD_ERR_OPTIONS, "the schedule's kind is not GD_CONSTANT, GD_STEP, "
                                      "GD_EXPONENTIAL, GD_COSINE, GD_LINEAR or GD_INVSCALING")
    if s.kind == 1 and bad_count(s.step_size):
        return refuse(GD_ERR_OPTIONS, "the schedule's step_size must be a whole number >= 1")
    if (s.kind == 1 or s.kind == 2) and bad_real(s.gamma, 0.0, True):
        return refuse(GD_ERR_OPTIONS, "the schedule's gamma must be finite and > 0")
    if s.kind == 3 and bad_count(s.T_max):
        return refuse(GD_ERR_OPTIONS, "the schedule's T_max must be a whole number >= 1")
    if s.kind == 3 and bad_real(s.eta_min, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "the schedule's eta_min must be finite and >= 0")
    if s.kind == 4 and (bad_real(s.start_factor, 0.0, True) or s.start_factor > 1.0):
        return refuse(GD_ERR_OPTIONS, "the schedule's start_factor must be in (0, 1]")
    if s.kind == 4 and (bad_real(s.end_factor, 0.0, False) or s.end_factor > 1.0):
        return refuse(GD_ERR_OPTIONS, "the schedule's end_factor must be in [0, 1]")
    if s.kind == 4 and bad_count(s.total_iters):
        return refuse(GD_ERR_OPTIONS, "the schedule's total_iters must be a whole number >= 1")
    if s.kind == 5 and bad_real(s.power_t, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "the schedule's power_t must be finite and >= 0")
    return GD_OK


# The most columns a call takes: a full-batch team allocates, per thread (up to
# GDCORE_MAX_THREADS), six (d + 1)-vectors and slots of ~8(d + 4)/7 doubles, so that every
# allocation's byte count stays below PY_SSIZE_T_MAX (~1.4e14 columns: a row of ~1 PiB).
cdef Py_ssize_t MOST_COLUMNS = PY_SSIZE_T_MAX // (64 * (GDCORE_MAX_THREADS + 1))
cdef const char* NO_BUFFER = ("n and d are sizes no buffer can have (n * d values past "
                              "PY_SSIZE_T_MAX bytes, or d above PY_SSIZE_T_MAX / 65600): "
                              "are they set?")


cdef int check_data(const floating* X, const floating* y, const floating* weights,
                    Py_ssize_t n, Py_ssize_t d, int n_threads) noexcept nogil:
    """GD_OK, or why X, y and weights (n × d, n, n or NULL) cannot be fitted.  Their NaN/inf
    check runs on the call's n_threads (one thread if that is out of range: it is refused
    later), as a fit's passes do: on one thread it cost a loss_grad call twice its pass."""
    cdef double total = 0.0
    cdef Py_ssize_t i
    if X == NULL:
        return refuse(GD_ERR_NULL, "X is NULL")
    if y == NULL:
        return refuse(GD_ERR_NULL, "y is NULL")
    if n < 1:
        return refuse(GD_ERR_SHAPE, "n (the rows of X) must be >= 1")
    if d < 1:
        return refuse(GD_ERR_SHAPE, "d (the columns of X) must be >= 1")
    # (sizes whose products wrap around would have the checks below read past the buffers)
    if d > MOST_COLUMNS or n > PY_SSIZE_T_MAX // (d * <Py_ssize_t>sizeof(floating)):
        return refuse(GD_ERR_SHAPE, NO_BUFFER)
    if bad_thread_count(n_threads):
        n_threads = 1
    if not finite_values(X, n * d, n_threads):
        return refuse(GD_ERR_INPUT, "X holds NaN or infinity")
    if not finite_values(y, n, n_threads):
        return refuse(GD_ERR_INPUT, "y holds NaN or infinity")
    if weights != NULL:
        if not finite_values(weights, n, n_threads):
            return refuse(GD_ERR_INPUT, "weights hold NaN or infinity")
        for i in range(n):
            if weights[i] < 0:
                return refuse(GD_ERR_WEIGHTS, "a weight is negative")
            total += weights[i]
        if not total > 0.0:
            return refuse(GD_ERR_WEIGHTS, "the weights sum to 0")
        if not isfinite(total):
            return refuse(GD_ERR_WEIGHTS, "the weights' sum overflows a double")
    return GD_OK


cdef inline bint has_nan(const floating* v, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if isnan(v[i]):
            return True
    return False


cdef inline bint bad_intercept(const floating* theta, Py_ssize_t d,
                               int fit_intercept) noexcept nogil:
    """theta[d] is b; without an intercept it must be 0, as gdcore.fit's init must have it."""
    return not fit_intercept and theta[d] != 0


# Weights are brought near 1 (the largest in [0.5, 1)) by a power of two when their largest
# is further than this many binades from it, as gdcore.fit does (_validation._weights_near_one):
# the fit is the same, and sᵢrᵢ² cannot overflow, nor 1/S, for weights at any scale.
cdef enum:
    WEIGHT_SCALE_LIMIT = 64


cdef int weights_near_one(const floating* weights, Py_ssize_t n,
                          floating** scaled) noexcept nogil:
    """scaled[0]: weights, or a malloc'ed copy scaled by a power of two (the caller frees
    it when it is not weights).  Returns GD_OK, GD_ERR_NO_MEMORY, or GD_ERR_WEIGHTS when a
    positive weight becomes 0 (weights spanning more than the type's range), as gdcore.fit
    refuses them."""
    cdef double largest = 0.0
    cdef int exponent
    cdef Py_ssize_t i
    scaled[0] = <floating*>weights
    if weights == NULL:
        return GD_OK
    for i in range(n):
        if weights[i] > largest:
            largest = weights[i]
    frexp(largest, &exponent)
    if -WEIGHT_SCALE_LIMIT <= exponent <= WEIGHT_SCALE_LIMIT:
        return GD_OK
    scaled[0] = <floating*>malloc(n * sizeof(floating))
    if scaled[0] == NULL:
        scaled[0] = <floating*>weights
        return refuse(GD_ERR_NO_MEMORY, "out of memory (a scaled copy of the weights)")
    for i in range(n):
        scaled[0][i] = <floating>ldexp(<double>weights[i], -exponent)
        if scaled[0][i] == 0 and weights[i] > 0:
            free(scaled[0])
            scaled[0] = <floating*>weights
            return refuse(GD_ERR_WEIGHTS, "the weights span more than the type's range: a "
                                          "positive one is 0 once the largest is scaled near 1")
    return GD_OK


cdef inline void start_state(const gd_optimizer* optimizer, floating* state,
                             Py_ssize_t d) noexcept nogil:
    """The optimizer state before the first update, from the zeros callers pass: Adagrad's
    sum starts at initial_accumulator_value, as torch.optim.Adagrad's (and gdcore.fit's)."""
    cdef Py_ssize_t j
    if optimizer.kind == OPT_ADAGRAD:
        for j in range(d + 1):
            state[j] = optimizer.initial_accumulator_value


cdef const char* BAD_THREADS = "n_threads must be 1 .. GDCORE_MAX_THREADS (1024)"


cdef int check_theta(const floating* theta, Py_ssize_t d, int fit_intercept) noexcept nogil:
    if not is_finite_vector(theta, d + 1):
        return refuse(GD_ERR_INPUT, "theta holds NaN or infinity")
    if bad_intercept(theta, d, fit_intercept):
        return refuse(GD_ERR_INPUT, "theta[d] (the intercept) must be 0 with fit_intercept = 0")
    return GD_OK


cdef int check_l1(double l1, int kind, const char* bad) noexcept nogil:
    if bad_real(l1, 0.0, False):
        return refuse(GD_ERR_OPTIONS, bad)
    if l1 > 0.0 and kind != OPT_SGD:
        return refuse(GD_ERR_OPTIONS, "l1 > 0 needs GD_SGD (l1 is a proximal step after an SGD "
                                      "update)")
    return GD_OK


cdef int capi_loss_grad(const floating* X, const floating* y, const floating* weights,
                        Py_ssize_t n, Py_ssize_t d, const floating* theta, double l2, double l1,
                        int fit_intercept, int n_threads, double* loss,
                        floating* grad) noexcept nogil:
    cdef int code = check_data(X, y, weights, n, d, n_threads)
    cdef double* buffer
    cdef floating* scaled
    cdef floating* gradient
    if code != GD_OK:
        return code
    if theta == NULL:
        return refuse(GD_ERR_NULL, "theta is NULL")
    if loss == NULL:
        return refuse(GD_ERR_NULL, "loss is NULL")
    if grad == NULL:
        return refuse(GD_ERR_NULL, "grad is NULL")
    code = check_theta(theta, d, fit_intercept)
    if code != GD_OK:
        return code
    if bad_real(l2, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "l2 must be finite and >= 0")
    if bad_real(l1, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "l1 must be finite and >= 0")
    if bad_thread_count(n_threads):
        return refuse(GD_ERR_OPTIONS, BAD_THREADS)
    code = weights_near_one(weights, n, &scaled)
    if code != GD_OK:
        return code
    buffer = <double*>calloc((<Py_ssize_t>n_threads + 1) * accumulator_stride(d),
                             sizeof(double))
    # g is formed apart and copied out last, so grad may be theta itself (J's penalties read
    # theta after the gradient is formed)
    gradient = <floating*>malloc((d + 1) * sizeof(floating))
    if buffer != NULL and gradient != NULL:
        # a full pass: its rows cut into parts as a full-batch fit's epoch cuts them, so the
        # same bits as that epoch's J and g
        block_sums(X, y, scaled, theta, d, NULL, n, 0, n, n_threads,
                   buffer + accumulator_stride(d), buffer, True)
        loss[0] = objective_and_gradient(buffer, theta, d, l2, l1, fit_intercept, gradient)
        # as a fit would stop here: the loss, or the gradient, past the data's range
        if not finite_in_data_precision(loss[0], theta):
            code = refuse(GD_ERR_LOSS_NOT_FINITE, "J at theta overflows the data's type: "
                                                  "rescale y (and X), or theta is too far out")
        elif not is_finite_vector(gradient, d + 1):
            code = refuse(GD_ERR_LOSS_NOT_FINITE, "the gradient at theta overflows the data's "
                                                  "type: rescale X and y, or theta is too far "
                                                  "out")
        memcpy(grad, gradient, (d + 1) * sizeof(floating))
    else:
        code = refuse(GD_ERR_NO_MEMORY, "out of memory (the pass's sums)")
    if scaled != weights:
        free(scaled)
    free(buffer)
    free(gradient)
    return code


cdef int capi_step(const gd_optimizer* optimizer, floating* theta, const floating* grad,
                   floating* state, Py_ssize_t d, int fit_intercept, long long t, double lr,
                   double l1) noexcept nogil:
    cdef int code = check_optimizer(optimizer, False)
    cdef floating* backup
    if code != GD_OK:
        return code
    if theta == NULL:
        return refuse(GD_ERR_NULL, "theta is NULL")
    if grad == NULL:
        return refuse(GD_ERR_NULL, "grad is NULL")
    if state == NULL:
        return refuse(GD_ERR_NULL, "state is NULL")
    if d < 1:
        return refuse(GD_ERR_SHAPE, "d must be >= 1")
    if d > MOST_COLUMNS:
        return refuse(GD_ERR_SHAPE, "d is a size no buffer can have (above PY_SSIZE_T_MAX / "
                                    "65600): is it set?")
    if t < 1:
        return refuse(GD_ERR_OPTIONS, "t (the update count) must be >= 1")
    if bad_real(lr, 0.0, True):
        return refuse(GD_ERR_OPTIONS, "lr must be finite and > 0")
    code = check_l1(l1, optimizer.kind, "l1 must be finite and >= 0")
    if code != GD_OK:
        return code
    code = check_theta(theta, d, fit_intercept)
    if code != GD_OK:
        return code
    if not is_finite_vector(grad, d + 1):
        return refuse(GD_ERR_INPUT, "grad holds NaN or infinity")
    if has_nan(state, 3 * (d + 1)):
        return refuse(GD_ERR_INPUT, "state holds NaN")
    backup = <floating*>malloc((d + 1) * sizeof(floating))
    if backup == NULL:
        return refuse(GD_ERR_NO_MEMORY, "out of memory (a copy of theta)")
    if t == 1:
        start_state(optimizer, state, d)
    code = apply_update(optimizer, theta, grad, state, state + (d + 1), state + 2 * (d + 1),
                        backup, d, fit_intercept, t, lr, l1)
    free(backup)
    if code != STATUS_OK:
        return refuse(GD_ERR_PARAMS_NOT_FINITE, "the update made theta non-finite (theta is "
                                                "restored, state took the update): try a "
                                                "smaller lr")
    return GD_OK


cdef inline bint counters_would_pass_the_limit(const gd_fit_info* info,
                                               const gd_fit_options* options, Py_ssize_t n,
                                               bint full_batch) noexcept nogil:
    """Whether options.epochs more epochs could take n_epochs or n_updates (an update a batch)
    to GDCORE_MAX_COUNT: the counters' promise (gdcore.h)."""
    cdef long long batches = 1 if full_batch else (n + options.batch_size - 1) // options.batch_size
    return (options.epochs > GDCORE_MAX_COUNT - 1 - info.n_epochs
            or options.epochs > (GDCORE_MAX_COUNT - 1 - info.n_updates) // batches)


cdef int capi_fit(const floating* X, const floating* y, const floating* weights,
                  Py_ssize_t n, Py_ssize_t d, const gd_fit_options* options, floating* theta,
                  floating* state, double* history, gd_fit_info* info) noexcept nogil:
    """The epoch loop of gdcore.fit without Python: rows in order, no callback, no signals."""
    cdef int code
    cdef bint full_batch
    cdef int status
    cdef floating* scaled
    cdef long long updates_before
    if info != NULL:    # a refused call ran no epochs: history holds nothing of it
        info.epochs_run = 0
        info.stop_reason = STOP_EPOCHS
    code = check_data(X, y, weights, n, d, options.n_threads if options != NULL else 1)
    if code != GD_OK:
        return code
    if options == NULL:
        return refuse(GD_ERR_NULL, "options is NULL")
    if theta == NULL:
        return refuse(GD_ERR_NULL, "theta is NULL")
    if state == NULL:
        return refuse(GD_ERR_NULL, "state is NULL")
    if history == NULL:
        return refuse(GD_ERR_NULL, "history is NULL")
    if info == NULL:
        return refuse(GD_ERR_NULL, "info is NULL")
    code = check_optimizer(&options.optimizer)
    if code != GD_OK:
        return code
    code = check_schedule(&options.schedule)
    if code != GD_OK:
        return code
    if options.epochs < 1:
        return refuse(GD_ERR_OPTIONS, "options->epochs must be >= 1")
    if options.batch_size < 0:
        return refuse(GD_ERR_OPTIONS, "options->batch_size must be >= 0 (0: full batch)")
    if bad_real(options.l2, 0.0, False):
        return refuse(GD_ERR_OPTIONS, "options->l2 must be finite and >= 0")
    code = check_l1(options.l1, options.optimizer.kind, "options->l1 must be finite and >= 0")
    if code != GD_OK:
        return code
    if options.n_iter_no_change < 1:
        return refuse(GD_ERR_OPTIONS, "options->n_iter_no_change must be >= 1")
    if bad_thread_count(options.n_threads):
        return refuse(GD_ERR_OPTIONS, BAD_THREADS)
    if not options.tol < HUGE_VAL:     # NaN, +inf
        return refuse(GD_ERR_OPTIONS, "options->tol must not be NaN or +inf (< 0: off)")
    if not options.gtol < HUGE_VAL:
        return refuse(GD_ERR_OPTIONS, "options->gtol must not be NaN or +inf (< 0: off)")
    full_batch = options.batch_size == 0 or options.batch_size >= n
    if options.gtol >= 0.0 and not full_batch:
        return refuse(GD_ERR_OPTIONS, "options->gtol >= 0 needs a full batch (batch_size 0 or "
                                      ">= n)")
    code = check_theta(theta, d, options.fit_intercept)
    if code != GD_OK:
        return code
    # state may hold inf (a float32 Adagrad or Adam sum of g² past float32's range is a
    # state a fit goes on from), but not NaN
    if has_nan(state, 3 * (d + 1)):
        return refuse(GD_ERR_INPUT, "state holds NaN")
    if bad_counter(info.n_updates):
        return refuse(GD_ERR_INFO, "info->n_updates must be >= 0 and below GDCORE_MAX_COUNT")
    if bad_counter(info.n_epochs):
        return refuse(GD_ERR_INFO, "info->n_epochs must be >= 0 and below GDCORE_MAX_COUNT")
    if bad_counter(info.n_no_improvement):
        return refuse(GD_ERR_INFO, "info->n_no_improvement must be >= 0 and below "
                                   "GDCORE_MAX_COUNT")
    if not info.best_loss >= 0.0:
        return refuse(GD_ERR_INFO, "info->best_loss must be >= 0 (HUGE_VAL, or 0 while "
                                   "n_epochs is 0, to start)")
    if counters_would_pass_the_limit(info, options, n, full_batch):
        return refuse(GD_ERR_INFO, "options->epochs more epochs could take info->n_epochs or "
                                   "info->n_updates to GDCORE_MAX_COUNT")
    if info.n_epochs == 0:
        # No epoch has set a best loss yet: a gd_fit_info initialised with {0} (best_loss 0,
        # below any loss) would have the tol rule stop the fit after n_iter_no_change epochs.
        info.best_loss = HUGE_VAL
        info.n_no_improvement = 0
    code = weights_near_one(weights, n, &scaled)
    if code != GD_OK:
        return code
    if info.n_updates == 0:
        start_state(&options.optimizer, state, d)
    updates_before = info.n_updates
    if full_batch:
        # No signals to look for here: the whole fit in one run.
        status = full_batch_epochs(X, y, scaled, theta, state, n, d, options, NULL,
                                   options.epochs, PY_SSIZE_T_MAX, history, info)
    else:
        status = mini_batch_fit(X, y, scaled, n, d, options, theta, state, history, info)
    if scaled != weights:
        free(scaled)
    if status == STATUS_NO_MEMORY:
        return refuse(GD_ERR_NO_MEMORY, "out of memory (the fit's sums and scratch space)")
    # a gradient that overflowed (Σ sᵢrᵢxᵢ past the type's range) is reported as loss_grad
    # reports it: at the first update no lr can help, which GD_ERR_PARAMS_NOT_FINITE's "try a
    # smaller lr" would hide from a caller that retries with smaller ones
    if status == STATUS_LOSS_NOT_FINITE and info.n_updates == updates_before:
        return refuse(GD_ERR_LOSS_NOT_FINITE, "the loss is not finite at the theta this call "
                                              "started from, before any update, whatever the "
                                              "lr: the squared residuals overflow the data's "
                                              "type; rescale y (and X), or start elsewhere")
    if status == STATUS_GRAD_NOT_FINITE and info.n_updates == updates_before:
        return refuse(GD_ERR_LOSS_NOT_FINITE, "the gradient is not finite at the theta this "
                                              "call started from, before any update, whatever "
                                              "the lr: the sum of s_i r_i x_i overflows the "
                                              "data's type; rescale X and y, or start "
                                              "elsewhere")
    if status == STATUS_LOSS_NOT_FINITE or status == STATUS_GRAD_NOT_FINITE:
        return refuse(GD_ERR_LOSS_NOT_FINITE, "the fit diverged: the loss or the gradient "
                                              "stopped being finite (theta holds the last "
                                              "finite parameters); try a smaller lr")
    if status == STATUS_PARAMS_NOT_FINITE:
        return refuse(GD_ERR_PARAMS_NOT_FINITE, "the fit diverged: an update made the "
                                                "parameters non-finite (theta holds the last "
                                                "finite parameters); try a smaller lr")
    return GD_OK


cdef int mini_batch_fit(const floating* X, const floating* y, const floating* weights,
                        Py_ssize_t n, Py_ssize_t d, const gd_fit_options* options,
                        floating* theta, floating* state, double* history,
                        gd_fit_info* info) noexcept nogil:
    """capi_fit's mini-batch epochs (rows in order); returns a Status."""
    cdef Py_ssize_t stride = accumulator_stride(d)
    cdef double loss
    cdef long long k
    cdef int status = STATUS_OK
    cdef double* buffer = <double*>calloc((<Py_ssize_t>options.n_threads + 1) * stride,
                                          sizeof(double))
    cdef floating* scratch = <floating*>malloc(2 * (d + 1) * sizeof(floating))
    if buffer == NULL or scratch == NULL:
        free(buffer)
        free(scratch)
        return STATUS_NO_MEMORY
    info.epochs_run = 0
    info.stop_reason = STOP_EPOCHS
    for k in range(options.epochs):
        status = mini_batch_epoch(
            X, y, weights, theta, scratch, state, state + (d + 1), state + 2 * (d + 1),
            scratch + (d + 1), n, d, NULL, options.batch_size, &options.optimizer,
            &options.schedule, info.n_epochs, &info.n_updates, options.l2, options.l1,
            options.fit_intercept, options.n_threads, buffer + stride, buffer, &loss, False)
        if status != STATUS_OK:
            break
        history[k] = loss
        info.epochs_run += 1
        info.n_epochs += 1
        info.stop_reason = stop_after_epoch(loss, options.tol, options.n_iter_no_change,
                                            False, &info.n_no_improvement, &info.best_loss)
        if info.stop_reason != STOP_EPOCHS:
            break
    free(buffer)
    free(scratch)
    return status


cdef int capi_loss_grad_f64(const double* X, const double* y, const double* weights,
                            Py_ssize_t n, Py_ssize_t d, const double* theta, double l2,
                            double l1, int fit_intercept, int n_threads, double* loss,
                            double* grad) noexcept nogil:
    return capi_loss_grad(X, y, weights, n, d, theta, l2, l1, fit_intercept, n_threads, loss,
                          grad)


cdef int capi_loss_grad_f32(const float* X, const float* y, const float* weights,
                            Py_ssize_t n, Py_ssize_t d, const float* theta, double l2,
                            double l1, int fit_intercept, int n_threads, double* loss,
                            float* grad) noexcept nogil:
    return capi_loss_grad(X, y, weights, n, d, theta, l2, l1, fit_intercept, n_threads, loss,
                          grad)


cdef int capi_step_f64(const gd_optimizer* optimizer, double* theta, const double* grad,
                       double* state, Py_ssize_t d, int fit_intercept, long long t, double lr,
                       double l1) noexcept nogil:
    return capi_step(optimizer, theta, grad, state, d, fit_intercept, t, lr, l1)


cdef int capi_step_f32(const gd_optimizer* optimizer, float* theta, const float* grad,
                       float* state, Py_ssize_t d, int fit_intercept, long long t, double lr,
                       double l1) noexcept nogil:
    return capi_step(optimizer, theta, grad, state, d, fit_intercept, t, lr, l1)


cdef int capi_fit_f64(const double* X, const double* y, const double* weights, Py_ssize_t n,
                      Py_ssize_t d, const gd_fit_options* options, double* theta,
                      double* state, double* history, gd_fit_info* info) noexcept nogil:
    return capi_fit(X, y, weights, n, d, options, theta, state, history, info)


cdef int capi_fit_f32(const float* X, const float* y, const float* weights, Py_ssize_t n,
                      Py_ssize_t d, const gd_fit_options* options, float* theta,
                      float* state, double* history, gd_fit_info* info) noexcept nogil:
    return capi_fit(X, y, weights, n, d, options, theta, state, history, info)


cdef gdcore_api api_table
api_table.version_major = GDCORE_API_VERSION_MAJOR
api_table.version_minor = GDCORE_API_VERSION_MINOR
api_table.loss_grad_f64 = capi_loss_grad_f64
api_table.loss_grad_f32 = capi_loss_grad_f32
api_table.step_f64 = capi_step_f64
api_table.step_f32 = capi_step_f32
api_table.fit_f64 = capi_fit_f64
api_table.fit_f32 = capi_fit_f32
api_table.strerror = capi_strerror
api_table.last_error = capi_last_error

_C_API = PyCapsule_New(<void*>&api_table, "gdcore._core._C_API", NULL)
C_API_VERSION = (GDCORE_API_VERSION_MAJOR, GDCORE_API_VERSION_MINOR)
