/* gdcore._cpu_features: which of the instruction-set extensions the core's variants use the
 * CPU says it runs, asked of the CPU itself (CPUID, and XGETBV for the OS's support of the
 * wider registers, through the compiler's __builtin_cpu_supports).
 *
 * gdcore/_cpu_check.py chooses a variant by /proc/cpuinfo, and /proc/cpuinfo can claim more
 * than a process may use: under valgrind, which hides AVX-512 from CPUID (it cannot run it),
 * /proc/cpuinfo still lists it, and the x86-64-v4 core died with SIGILL.  Of the features
 * asked here, one counts as present only where both say so (the others the cores need, such
 * as f16c or movbe, /proc/cpuinfo alone decides).  Compiled for the baseline target on every
 * x86-64 Linux build (GCC or Clang), and optional: without it, /proc/cpuinfo decides.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int add(PyObject *features, const char *name, int supported)
{
    PyObject *value = supported ? Py_True : Py_False;
    return PyDict_SetItemString(features, name, value);
}

/* {name as /proc/cpuinfo spells it: whether CPUID (and the OS) allow it} */
static PyObject *cpu_features(PyObject *self, PyObject *unused)
{
    PyObject *features = PyDict_New();
    (void)self;
    (void)unused;
    if (features == NULL)
        return NULL;
    __builtin_cpu_init();
#define GD_FEATURE(builtin_name, linux_name)                                                \
    if (add(features, linux_name, __builtin_cpu_supports(builtin_name) != 0) < 0) {        \
        Py_DECREF(features);                                                                \
        return NULL;                                                                        \
    }
    GD_FEATURE("sse3", "pni")
    GD_FEATURE("ssse3", "ssse3")
    GD_FEATURE("sse4.1", "sse4_1")
    GD_FEATURE("sse4.2", "sse4_2")
    GD_FEATURE("popcnt", "popcnt")
    GD_FEATURE("avx", "avx")
    GD_FEATURE("avx2", "avx2")
    GD_FEATURE("fma", "fma")
    GD_FEATURE("bmi", "bmi1")
    GD_FEATURE("bmi2", "bmi2")
    GD_FEATURE("avx512f", "avx512f")
    GD_FEATURE("avx512bw", "avx512bw")
    GD_FEATURE("avx512cd", "avx512cd")
    GD_FEATURE("avx512dq", "avx512dq")
    GD_FEATURE("avx512vl", "avx512vl")
#undef GD_FEATURE
    return features;
}

static PyMethodDef methods[] = {
    {"cpu_features", cpu_features, METH_NOARGS,
     "{feature (as /proc/cpuinfo names it): whether the CPU and the OS let this process use "
     "it}, for the features gdcore's core variants need."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpu_features",
    "Which instruction-set extensions this process may use, asked of the CPU (CPUID).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__cpu_features(void)
{
    return PyModule_Create(&module);
}
