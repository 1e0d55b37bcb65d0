# Types shared by the kernels, the update rules, the schedules and the fit loop.
# The integer codes match gdcore/optim.py and gdcore/schedules.py.

cdef enum OptimizerKind:
    OPT_SGD = 0
    OPT_ADAGRAD = 1
    OPT_RMSPROP = 2
    OPT_ADAM = 3
    OPT_NORMALIZED = 4

cdef enum ScheduleKind:
    SCHED_CONSTANT = 0
    SCHED_STEP = 1
    SCHED_EXPONENTIAL = 2
    SCHED_COSINE = 3
    SCHED_LINEAR = 4
    SCHED_INVSCALING = 5

# Outcome of an epoch or a fit, returned by the nogil loops (Python raises after).
cdef enum Status:
    STATUS_OK = 0
    STATUS_LOSS_NOT_FINITE = 1      # J at the current parameters overflowed or is NaN
    STATUS_PARAMS_NOT_FINITE = 2    # an update produced inf/NaN; the parameters were restored
    STATUS_INTERRUPTED = 3          # a signal handler raised (Ctrl-C) in the middle of an epoch
    STATUS_NO_MEMORY = 4            # scratch buffers could not be allocated (nothing was run)
    STATUS_NO_TEAM = 5              # internal: no thread team could be formed (nothing was run)
    STATUS_GRAD_NOT_FINITE = 6      # as STATUS_PARAMS_NOT_FINITE, and the update's gradient
                                    # itself was inf/NaN (overflow: the data's scale, not lr)

# The hyper-parameter structs are those of the C API (gdcore/include/gdcore.h), so the C
# API passes them straight through.
from gdcore.capi cimport gd_optimizer, gd_schedule

ctypedef gd_optimizer OptimConfig
ctypedef gd_schedule ScheduleConfig

# Layout of the sums one pass over a block of rows produces (after the d gradient sums).
cdef enum SumSlot:
    SLOT_RESIDUAL = 0   # Σ sᵢ rᵢ        (the intercept's gradient, times S)
    SLOT_SQUARES = 1    # Σ sᵢ rᵢ²       (twice the data loss, times S)
    SLOT_WEIGHT = 2     # Σ sᵢ           (S, or S_B on a mini-batch)
    N_SLOTS = 3
