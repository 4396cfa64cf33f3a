"""MkDocs hook: renders the Gateway API reference from the docstrings of
gwgevent.api.GatewayApi into api.md (where the page says <!-- gateway-api -->), so the
reference cannot drift from the code. tests/test_docs.py checks every method has one."""
from __future__ import annotations

import inspect
import os
import sys

MARK = "<!-- gateway-api -->"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def render_gateway_api() -> str:
    # this checkout's gwgevent, not an installed one (mkdocs resets sys.path around hooks)
    if sys.path[:1] != [REPO]:
        sys.path.insert(0, REPO)
    from gwgevent.api.gateway_api import API_METHODS, GatewayApi
    out = []
    for entry in API_METHODS:
        name, aliases = entry[0], entry[1:]
        fn = getattr(GatewayApi, name)
        sig = str(inspect.signature(fn)).replace("(self, ", "(").replace("(self)", "()")
        out.append("### `%s`\n" % name)
        out.append("```python\nGateway.%s%s\n```\n" % (name, sig))
        if aliases:
            out.append("PHP spelling: %s\n" % ", ".join("`%s`" % a for a in aliases))
        out.append((inspect.getdoc(fn) or "").strip() + "\n")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARK in markdown:
        return markdown.replace(MARK, render_gateway_api())
    return markdown
