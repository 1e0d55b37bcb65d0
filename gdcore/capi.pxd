# Cython declarations of gdcore's C API (gdcore/include/gdcore.h).
#
#     from gdcore.capi cimport gdcore_api, gdcore_import, gd_fit_options, gd_fit_info
#     cdef const gdcore_api* api = gdcore_import()   # once, with the GIL
#     with nogil:
#         code = api.fit_f64(&X[0, 0], &y[0], NULL, n, d, &options, &theta[0], &state[0],
#                            &history[0], &info)
#
#     if code != GD_OK:
#         raise ValueError(api.last_error().decode())    # names the argument (since 1.6)
#
# Build with include_dirs=[gdcore.get_include()] on the Extension and
# include_path=[gdcore.get_cython_include()] given to cythonize (an editable install keeps
# gdcore off the path where Cython looks for .pxd files).  The ABI promise is in gdcore.h.

cdef extern from "gdcore.h":
    int GDCORE_API_VERSION_MAJOR
    int GDCORE_API_VERSION_MINOR
    int GDCORE_MAX_THREADS
    long long GDCORE_MAX_COUNT
    const char* GDCORE_CAPSULE_NAME

    int GD_OK
    int GD_ERR_NULL
    int GD_ERR_SHAPE
    int GD_ERR_INPUT
    int GD_ERR_WEIGHTS
    int GD_ERR_OPTIONS
    int GD_ERR_LOSS_NOT_FINITE
    int GD_ERR_PARAMS_NOT_FINITE
    int GD_ERR_NO_MEMORY
    int GD_ERR_INFO

    int GD_SGD, GD_ADAGRAD, GD_RMSPROP, GD_ADAM, GD_NORMALIZED
    int GD_CONSTANT, GD_STEP, GD_EXPONENTIAL, GD_COSINE, GD_LINEAR, GD_INVSCALING
    int GD_STOP_EPOCHS, GD_STOP_TOL, GD_STOP_GTOL

    ctypedef struct gd_optimizer:
        int kind
        double lr
        double momentum
        double dampening
        int nesterov
        double lr_decay
        double initial_accumulator_value
        double alpha
        double eps
        int centered
        double beta1
        double beta2
        int amsgrad

    ctypedef struct gd_schedule:
        int kind
        double step_size
        double gamma
        double T_max
        double eta_min
        double start_factor
        double end_factor
        double total_iters
        double power_t

    ctypedef struct gd_fit_options:
        gd_optimizer optimizer
        gd_schedule schedule
        long long epochs
        long long batch_size
        double l2
        double l1
        int fit_intercept
        double tol
        long long n_iter_no_change
        double gtol
        int n_threads

    ctypedef struct gd_fit_info:
        long long n_updates
        long long n_epochs
        long long n_no_improvement
        double best_loss
        long long epochs_run
        int stop_reason

    ctypedef struct gdcore_api:
        int version_major
        int version_minor
        int (*loss_grad_f64)(const double* X, const double* y, const double* weights,
                             Py_ssize_t n, Py_ssize_t d, const double* theta, double l2,
                             double l1, int fit_intercept, int n_threads, double* loss,
                             double* grad) noexcept nogil
        int (*loss_grad_f32)(const float* X, const float* y, const float* weights,
                             Py_ssize_t n, Py_ssize_t d, const float* theta, double l2,
                             double l1, int fit_intercept, int n_threads, double* loss,
                             float* grad) noexcept nogil
        int (*step_f64)(const gd_optimizer* optimizer, double* theta, const double* grad,
                        double* state, Py_ssize_t d, int fit_intercept, long long t,
                        double lr, double l1) noexcept nogil
        int (*step_f32)(const gd_optimizer* optimizer, float* theta, const float* grad,
                        float* state, Py_ssize_t d, int fit_intercept, long long t,
                        double lr, double l1) noexcept nogil
        int (*fit_f64)(const double* X, const double* y, const double* weights, Py_ssize_t n,
                       Py_ssize_t d, const gd_fit_options* options, double* theta,
                       double* state, double* history, gd_fit_info* info) noexcept nogil
        int (*fit_f32)(const float* X, const float* y, const float* weights, Py_ssize_t n,
                       Py_ssize_t d, const gd_fit_options* options, float* theta,
                       float* state, double* history, gd_fit_info* info) noexcept nogil
        const char* (*strerror)(int code) noexcept nogil
        const char* (*last_error)() noexcept nogil     # since 1.6

    const gdcore_api* gdcore_import() except NULL
