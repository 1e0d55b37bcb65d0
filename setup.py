"""Build the compiled core, gdcore._core, from the Cython sources in src/ (and, on x86-64 Linux,
gdcore._cpu_features, a few lines of C that ask CPUID which vector extensions may be used).

OpenMP is used when the compiler has it; otherwise the extension is built single-threaded
and a warning says so (gdcore._core.openmp_enabled() reports which).
-march=native is used only for builds that stay on this machine (an editable install,
build_ext --inplace) or when GDCORE_NATIVE=1 is set; a wheel (python -m build, or pip building
one from the sdist, which pip then caches and reuses) is built for the architecture's baseline so
that it runs on any CPU.  GDCORE_PORTABLE=1 leaves -march=native out in every case,
GDCORE_SANITIZE=address builds with AddressSanitizer (see scripts/asan.sh),
GDCORE_EXTRA_CFLAGS="..." adds compiler flags (for experiments such as
-mprefer-vector-width=512).
A portable build on x86-64 Linux also compiles the core for x86-64-v3 (AVX2, FMA) and
x86-64-v4 (AVX-512) into gdcore/_cores/<name>/; gdcore/_cpu_check.py loads the best one this
CPU runs (GDCORE_DISPATCH=0 builds the baseline core only).
"""

import contextlib
import functools
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def c_compiler():
    """The C compiler Python was built with (or $CC), as an argument list; None if absent."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    return cc if shutil.which(cc[0]) is not None else None


def compiles(source_text, flags):
    """Whether the C compiler compiles and links source_text with these flags."""
    cc = c_compiler()
    if cc is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "test.c")
        with open(source, "w") as f:
            f.write(source_text)
        result = subprocess.run(cc + flags + [source, "-o", os.path.join(tmp, "test")],
                                capture_output=True)
        return result.returncode == 0


def compiler_has_openmp():
    """Try to compile and link a tiny OpenMP program with the compiler Python was built with."""
    return compiles(OPENMP_TEST, ["-fopenmp"])


def compiler_accepts(*flags):
    return compiles("int main(void) { return 0; }\n", list(flags))


# Macros a compiler defines for instruction-set extensions, and the names /proc/cpuinfo
# gives them: what the core needs from a CPU beyond the compiler's default target
# (gdcore/_cpu_check.py checks it at import, before loading the core).
CPU_FEATURE_MACROS = {
    "__SSE3__": "pni", "__SSSE3__": "ssse3", "__SSE4_1__": "sse4_1", "__SSE4_2__": "sse4_2",
    "__POPCNT__": "popcnt", "__AVX__": "avx", "__AVX2__": "avx2", "__FMA__": "fma",
    "__F16C__": "f16c", "__BMI__": "bmi1", "__BMI2__": "bmi2", "__MOVBE__": "movbe",
    "__AVX512F__": "avx512f", "__AVX512CD__": "avx512cd", "__AVX512DQ__": "avx512dq",
    "__AVX512BW__": "avx512bw", "__AVX512VL__": "avx512vl", "__AVX512IFMA__": "avx512ifma",
    "__AVX512VBMI__": "avx512vbmi", "__AVX512VBMI2__": "avx512_vbmi2",
    "__AVX512VNNI__": "avx512_vnni", "__AVX512BITALG__": "avx512_bitalg",
    "__AVX512VPOPCNTDQ__": "avx512_vpopcntdq", "__AVX512BF16__": "avx512_bf16",
    "__AVX512FP16__": "avx512_fp16", "__GFNI__": "gfni", "__VAES__": "vaes",
    "__VPCLMULQDQ__": "vpclmulqdq", "__AVXVNNI__": "avx_vnni", "__LZCNT__": "abm",
    "__XSAVE__": "xsave", "__LAHF_SAHF__": "lahf_lm",
    "__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16": "cx16",
}


def compiler_macros(flags):
    """The macros the C compiler predefines with these flags (empty if it cannot say)."""
    return _compiler_macros(tuple(flags))


@functools.lru_cache(maxsize=None)
def _compiler_macros(flags):
    # cached: the baseline's set is asked for by every target file and the platform check
    cc = c_compiler()
    if cc is None:
        return frozenset()
    result = subprocess.run(cc + list(flags) + ["-dM", "-E", "-x", "c", os.devnull],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return frozenset()
    return frozenset(line.split()[1] for line in result.stdout.splitlines()
                     if line.startswith("#define "))


def required_cpu_features(flags):
    """The CPU features (as /proc/cpuinfo names them) these compile flags use beyond the
    compiler's default target."""
    extra = compiler_macros(flags) - compiler_macros([])
    return sorted(CPU_FEATURE_MACROS[m] for m in extra if m in CPU_FEATURE_MACROS)


def native_build():
    """Whether to compile for this machine's CPU (-march=native): a wheel built that way dies
    with SIGILL on import on a CPU without the build machine's vector extensions (AVX-512 here),
    and pip caches the wheel it builds from the sdist and reuses it on every machine sharing the
    cache, whatever GDCORE_PORTABLE says then.  So only builds that cannot leave this machine get
    it by default: an editable install or build_ext --inplace."""
    if os.environ.get("GDCORE_PORTABLE") == "1":
        return False
    if os.environ.get("GDCORE_NATIVE") == "1":
        return True
    return any(arg in sys.argv for arg in ("editable_wheel", "develop", "--inplace", "-i"))


# The levels of x86-64 a portable build compiles the core for besides the baseline one (the
# baseline alone: full-batch epochs at d = 10 ~4x slower, 1000 epochs of a 1000 x 10
# problem ~7.5x slower than -march=native on an AVX-512 machine; x86-64-v4 at native's speed
# but for classic SGD, 3-6% slower, 15% in a first measurement):
# -march=x86-64-vN where the compiler knows it (GCC >= 11, Clang >= 12), else its features.
X86_64_V3 = ["-mpopcnt", "-msse3", "-mssse3", "-msse4.1", "-msse4.2", "-mcx16", "-msahf",
             "-mavx", "-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mlzcnt", "-mmovbe", "-mf16c",
             "-mxsave"]
DISPATCH_TARGETS = {
    "x86-64-v3": (["-march=x86-64-v3"], X86_64_V3),
    "x86-64-v4": (["-march=x86-64-v4"],
                  X86_64_V3 + ["-mavx512f", "-mavx512bw", "-mavx512cd", "-mavx512dq",
                               "-mavx512vl"]),
}


def on_x86_64_linux():
    """Whether the build is for x86-64 Linux: asked of the compiler, so that a cross build
    (an x86-64 machine building for aarch64) or a 32-bit Python on a 64-bit kernel says no."""
    return {"__x86_64__", "__linux__"} <= compiler_macros([])


def dispatch_targets():
    """{name: flags} of the variants to build: none for a native build (it has them all), an
    ASan build, GDCORE_DISPATCH=0, or where the import-time choice cannot see the CPU's
    features (_cpu_check reads /proc/cpuinfo: x86-64 Linux only)."""
    if (native_build() or os.environ.get("GDCORE_SANITIZE")
            or os.environ.get("GDCORE_DISPATCH") == "0" or not on_x86_64_linux()):
        return {}
    targets = {}
    for name, choices in DISPATCH_TARGETS.items():
        flags = next((flags for flags in choices if compiler_accepts(*flags)), None)
        if flags is None:
            warnings.warn(f"gdcore: the C compiler cannot target {name}; this build holds "
                          f"no core for it (slower on such CPUs)", stacklevel=1)
            print(f"WARNING: gdcore: no {name} core (the C compiler cannot target it)",
                  file=sys.stderr)
        else:
            targets[name] = flags
    return targets


def extension_flags():
    compile_args = ["-O3"]
    link_args = []
    # Every vector instruction the machine has (AVX2/AVX-512 and FMA on recent x86) where the
    # build stays on it; the architecture's baseline for wheels (native_build).
    if native_build() and compiler_accepts("-march=native"):
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
variant_flags = {name: compile_args + flags for name, flags in dispatch_targets().items()}
# The name of the file that says how this Python's core was built (gdcore/_cpu_check.py reads
# it), one per Python as the cores are: "_core_target.cpython-311-x86_64-linux-gnu.txt".
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
TARGET_NAME = "_core_target" + EXT_SUFFIX.rsplit(".", 1)[0] + ".txt"


def write_target(path, flags, variants=()):
    """The flags, the CPU features they need (gdcore/_cpu_check.py reads them) and, for the
    baseline core, the variants built with it."""
    with open(path, "w") as f:
        f.write(" ".join(flags) + "\n" + " ".join(required_cpu_features(flags)) + "\n"
                + " ".join(variants) + "\n")


class build_ext_with_flags(build_ext):
    """build_ext compares file times only: after one build in this tree, a second with other
    flags (GDCORE_PORTABLE=1, GDCORE_NATIVE=1, GDCORE_SANITIZE...) would reuse the first's
    object and say nothing.  Recompile whenever the flags differ from the last build's."""

    def run(self):
        print(f"gdcore: compiling gdcore._core with {' '.join(compile_args)}", file=sys.stderr)
        for name, flags in variant_flags.items():
            print(f"gdcore: and the variant {name} with {' '.join(flags)}", file=sys.stderr)
        if variant_flags and self.parallel is None:
            self.parallel = os.cpu_count() or 1    # the variants compile side by side
        flags = (" ".join(compile_args) + " | " + " ".join(link_args) + " | "
                 + repr(sorted(variant_flags.items())) + " | " + repr(c_compiler()))
        stamp = os.path.join(self.build_temp, "gdcore-flags.txt")
        try:
            with open(stamp) as f:
                self.force = self.force or f.read() != flags
        except OSError:
            self.force = True
        for ext in self.extensions:   # in place, a variant's folder is not made for it
            os.makedirs(os.path.dirname(self.get_ext_fullpath(ext.name)), exist_ok=True)
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(flags)
        # beside the core, wherever it went (the source tree in place, else build_lib)
        package = os.path.dirname(self.get_ext_fullpath("gdcore._core"))
        core_target, *variant_targets = self.target_files(package)
        write_target(core_target, compile_args, variant_flags)
        for path, flags in zip(variant_targets, variant_flags.values()):
            write_target(path, flags)
        # This Python's variants of an earlier build (a portable build in place, then a native
        # one): the target above no longer names them, and their files go too (another
        # Python's build in the same folder keeps its own).
        for stale in glob.glob(os.path.join(glob.escape(package), "_cores", "*")):
            if os.path.basename(stale) not in variant_flags:
                for own in ("_core" + EXT_SUFFIX, TARGET_NAME):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(stale, own))
                with contextlib.suppress(OSError):
                    os.rmdir(stale)     # only if empty

    def target_files(self, package=None):
        """The target files run() writes (in package, by default where the core goes): the
        core's, then each variant's."""
        if package is None:
            package = os.path.dirname(self.get_ext_fullpath("gdcore._core"))
        return [os.path.join(package, TARGET_NAME),
                *(os.path.join(package, "_cores", name, TARGET_NAME) for name in variant_flags)]

    # The target files are outputs too: an editable install in strict mode
    # (editable_mode=strict) links what build_ext says it made, and without them its core
    # went unchecked and a portable build's variants unused.  In place (editable installs
    # build in place) they are written in the tree, and mapped from build_lib as the cores are.
    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        if self.inplace:
            mapping.update(zip(self.target_files(os.path.join(self.build_lib, "gdcore")),
                               self.target_files()))
        return mapping

    def get_outputs(self):
        outputs = super().get_outputs()     # in place: the mapping's keys, targets included
        return outputs if self.inplace else [*outputs, *self.target_files()]


extensions = [
    Extension(
        "gdcore._core",
        sources=["src/_core.pyx"],
        include_dirs=["src", "gdcore/include"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
]

extensions = cythonize(extensions, include_path=["src", "."],
                       compiler_directives={"language_level": "3"})


def variant_source(name):
    """A C file of the variant's own that includes the one Cython wrote for gdcore._core:
    build_ext names each object after its source, so the variants, compiled side by side,
    would otherwise write one object file.  Written only when it changes, so that an
    unchanged tree does not recompile the variants."""
    path = os.path.join("build", "gdcore-variants", f"_core_{name}.c")
    text = '#include "_core.c"  /* src/_core.c, through the include path */\n'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path) as f:
            unchanged = f.read() == text
    except OSError:
        unchanged = False
    if not unchanged:
        with open(path, "w") as f:
            f.write(text)
    return path


# Each variant is the same module (one PyInit__core, loaded as gdcore._core: _cpu_check),
# compiled with its own flags into gdcore/_cores/<name>/ (a folder name that is no Python
# identifier, so that no import statement reaches a variant around _cpu_check).
core = extensions[0]
extensions += [Extension(f"gdcore._cores.{name}._core", sources=[variant_source(name)],
                         include_dirs=core.include_dirs, extra_compile_args=flags,
                         extra_link_args=link_args, depends=[*core.depends, *core.sources])
               for name, flags in variant_flags.items()]
if on_x86_64_linux():
    # CPUID's word on the features the cores use (gdcore/_cpu_check.py), for the baseline
    # optional: without it /proc/cpuinfo alone decides, as on builds for other platforms
    extensions.append(Extension("gdcore._cpu_features", sources=["src/gd_cpu_features.c"],
                                extra_compile_args=["-O2"], optional=True))

setup(cmdclass={"build_ext": build_ext_with_flags}, ext_modules=extensions)
