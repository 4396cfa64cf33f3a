import re
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """gwgevent._speedups is optional: without a C compiler (or Python headers) the build
    says so and the package installs with its pure-Python codecs (gwgevent/accel.py)."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "no speedups"
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._skip(exc)

    @staticmethod
    def _skip(exc):
        print("WARNING: gwgevent._speedups not built (%s); the pure-Python codecs are used"
              % exc)


VERSION = re.search(r'VERSION = "([^"]+)"',
                    (Path(__file__).parent / "gwgevent" / "_version.py").read_text()).group(1)

setup(
    name="gwgevent",
    version=VERSION,
    description="GatewayWorker (PHP) rebuilt on gevent: Register, Gateway and BusinessWorker "
    "roles, wire-compatible with GatewayWorker 4.x",
    packages=find_packages(include=["gwgevent", "gwgevent.*"]),
    ext_modules=[Extension("gwgevent._speedups",
                           ["gwgevent/_speedups.c", "gwgevent/_speedups_conn.c"],
                           depends=["gwgevent/_speedups.h"],
                           extra_compile_args=["-O2"], optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
    python_requires=">=3.9",
    install_requires=[
        "gevent>=23.9",
        "greenlet>=3.0",
        "ujson>=5.0",
        "setproctitle>=1.3",
    ],
    license="MIT",
    extras_require={
        # cryptography: tests/test_runtime_tls.py makes its self-signed certificate with it
        # (skipped without it); websockets: an asyncio websocket client used by tests;
        # selenium: drives Chromium in tests/test_chat_browser.py
        "test": ["pytest>=7", "pytest-timeout>=2.1", "websocket-client>=1.6",
                 "cryptography>=41", "websockets>=12", "selenium>=4.10",
                 "PyMySQL>=1.1", "redis>=5.0", "prometheus_client>=0.17"],
        # gwgevent.metrics: the Prometheus endpoint
        "metrics": ["prometheus_client>=0.17"],
        # gwgevent.lib.db (PyMySQL) and gwgevent.lib.redis (redis-py): optional helpers
        "db": ["PyMySQL>=1.1", "redis>=5.0"],
        "hiredis": ["redis>=5.0", "hiredis>=2.0"],
        # the documentation site (mkdocs.yml, docs/): mkdocs build --strict
        "docs": ["mkdocs>=1.5"],
    },
)
