"""Documentation: every public name and every Gateway API method says what it is for (the API
reference in docs/ is rendered from these docstrings), and the MkDocs site builds with
warnings as errors when mkdocs is installed (.ci/run installs it and builds the site too)."""
from __future__ import annotations

import importlib.util
import inspect
import shutil
import subprocess
import sys

import pytest

import gwgevent
from gwgevent.api.gateway_api import API_METHODS, GatewayApi
from helpers import REPO


def test_public_names_have_docstrings():
    missing = [name for name in gwgevent.__all__
               if name != "__version__" and not inspect.getdoc(getattr(gwgevent, name))]
    assert missing == []


def test_gateway_api_methods_have_docstrings_and_reach_the_reference():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    reference = hooks.render_gateway_api()
    public = [n for n, _ in inspect.getmembers(GatewayApi, callable) if not n.startswith("_")]
    missing = [n for n in public if not (inspect.getdoc(getattr(GatewayApi, n)) or "").strip()]
    assert missing == []
    for entry in API_METHODS:
        assert "### `%s`" % entry[0] in reference
        for alias in entry[1:]:
            assert "`%s`" % alias in reference


@pytest.mark.skipif(shutil.which("mkdocs") is None and
                    importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs not installed (pip install -e '.[docs]'; .ci/run does)")
def test_site_builds_strict(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                          "-d", str(tmp_path / "site")], cwd=str(REPO), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "send_to_uid" in (tmp_path / "site" / "api" / "index.html").read_text()
