"""Build the one compiled extension, gdcore._core, from the Cython sources in src/.

OpenMP is used when the compiler has it; otherwise the extension is built single-threaded
and a warning says so (gdcore._core.openmp_enabled() reports which).
Set GDCORE_PORTABLE=1 to build without -march=native, GDCORE_SANITIZE=address to build with
AddressSanitizer (see scripts/asan.sh), GDCORE_EXTRA_CFLAGS="..." to add compiler flags (for
experiments such as -mprefer-vector-width=512).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_TEST = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def compiler_has_openmp():
    """Try to compile and link a tiny OpenMP program with the compiler Python was built with."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    if shutil.which(cc[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "omp_test.c")
        with open(source, "w") as f:
            f.write(OPENMP_TEST)
        result = subprocess.run(cc + ["-fopenmp", source, "-o", os.path.join(tmp, "omp_test")],
                                capture_output=True)
        return result.returncode == 0


def compiler_accepts(flag):
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    if shutil.which(cc[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "flag_test.c")
        with open(source, "w") as f:
            f.write("int main(void) { return 0; }\n")
        result = subprocess.run(cc + [flag, source, "-o", os.path.join(tmp, "flag_test")],
                                capture_output=True)
        return result.returncode == 0


def extension_flags():
    compile_args = ["-O3"]
    link_args = []
    # gdcore is built from source on the machine that runs it, so by default it uses every
    # vector instruction that machine has (AVX2/AVX-512 and FMA on recent x86).
    # GDCORE_PORTABLE=1 builds for the baseline of the architecture instead.
    if os.environ.get("GDCORE_PORTABLE") != "1" and compiler_accepts("-march=native"):
        compile_args.append("-march=native")
    # sqrt() must set errno on a negative argument unless told otherwise, and that keeps GCC
    # from vectorising the Adagrad/RMSprop/Adam updates (a scalar sqrt and a branch a value:
    # Adam at batch_size=1, d = 100, 579 -> 298 ns an update).  The results are IEEE's either
    # way (sqrt of a negative is NaN); nothing in gdcore reads errno.
    if compiler_accepts("-fno-math-errno"):
        compile_args.append("-fno-math-errno")
    compile_args += os.environ.get("GDCORE_EXTRA_CFLAGS", "").split()
    if os.environ.get("GDCORE_DISABLE_OPENMP") != "1" and compiler_has_openmp():
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:
        warnings.warn("gdcore: the C compiler has no OpenMP (or GDCORE_DISABLE_OPENMP=1); "
                      "building gdcore._core single-threaded", stacklevel=1)
        print("WARNING: building gdcore._core without OpenMP: fits will use one thread",
              file=sys.stderr)
    sanitizer = os.environ.get("GDCORE_SANITIZE")
    if sanitizer:
        compile_args += [f"-fsanitize={sanitizer}", "-fno-omit-frame-pointer", "-g", "-O1"]
        link_args += [f"-fsanitize={sanitizer}"]
    return compile_args, link_args


compile_args, link_args = extension_flags()
extensions = [
    Extension(
        "gdcore._core",
        sources=["src/_core.pyx"],
        include_dirs=["src", "gdcore/include", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src", "."],
        compiler_directives={"language_level": "3"},
    ),
)
