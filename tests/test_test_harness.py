"""The suite's own set-up: child Pythons import the gdcore the suite imported."""

import os
import subprocess
import sys

import gdcore
from conftest import subprocess_env


def test_the_suite_runs_outside_any_gdcore_source_folder():
    # before, the suite ran in the folder pytest was started from: a checkout's gdcore/ there
    # came first on the children's sys.path (127 tests failed against an installed gdcore)
    assert not os.path.exists(os.path.join(os.getcwd(), "gdcore", "__init__.py"))


def test_a_child_python_imports_this_gdcore():
    code = "import gdcore; print(gdcore.__file__, gdcore.build_info()['core'])"
    for args in (["-c", code], ["-m", "gdcore", "--version"]):
        child = subprocess.run([sys.executable, *args], env=subprocess_env(), timeout=120,
                               capture_output=True, text=True)
        assert child.returncode == 0, child.stderr
        if args[0] == "-c":
            path, core = child.stdout.split()
            assert os.path.samefile(path, gdcore.__file__)
            assert core == gdcore.build_info()["core"]
