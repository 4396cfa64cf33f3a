"""PyMySQL and redis-py are an extra (`gwgevent[db]`): without them the framework imports and
runs, and the helpers that need them fail at import with the command that installs them.
Run in fresh interpreters where the packages are made unimportable (sys.modules[...] = None)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO

BLOCK = "import sys; sys.path.insert(0, %r); sys.modules['pymysql'] = None; " \
        "sys.modules['redis'] = None; " % str(REPO)


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_framework_works_without_db_packages():
    res = run("import gwgevent; from gwgevent import Gateway, BusinessWorker, Register, "
              "GatewayClient; import gwgevent.business_worker, gwgevent.gateway; print('ok')")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("module,package", [("gwgevent.lib.db", "PyMySQL"),
                                            ("gwgevent.lib.redis", "redis")])
def test_helper_without_its_package_says_how_to_install(module, package):
    res = run("import %s" % module)
    assert res.returncode != 0
    assert "ImportError: %s needs the %s package" % (module, package) in res.stderr, res.stderr
    assert "pip install 'gwgevent[db]'" in res.stderr
