"""Build the optional Cython tree core; the package works without it (pure-Python twin)."""
import os

from setuptools import setup

ext_modules = []
if os.environ.get("REASONER_NO_CYTHON") != "1":
    try:
        import numpy
        from Cython.Build import cythonize
        from setuptools import Extension

        ext_modules = cythonize(
            [Extension("cython_ext.tree_core", ["cython_ext/tree_core.pyx"],
                       include_dirs=[numpy.get_include()],
                       # no fused multiply-add: results stay bit-equal to the Python twin on every CPU
                       extra_compile_args=["-O3", "-ffp-contract=off"])],
            compiler_directives={"language_level": "3", "boundscheck": False,
                                 "wraparound": False, "cdivision": True, "initializedcheck": False},
            quiet=True,
        ) if os.path.exists("cython_ext/tree_core.pyx") else []
    except ImportError:  # Cython or numpy missing at build time: the twin is used.
        ext_modules = []

setup(ext_modules=ext_modules)
