"""The Chat demo (Applications/Chat + start.py) as a test app: copied to a temp dir and run
through start.py on free ports (CHAT_* environment variables), so a test never touches the
developer's own demo or its pid file."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from cluster import port_block
from helpers import REPO

#: Register + Gateway x2 + BusinessWorker x2 + ChatWeb
PROCESSES = 6


def stage_chat(workdir: Path) -> Path:
    """A directory holding start.py and Applications/Chat only."""
    src = workdir / "chat-src"
    (src / "Applications").mkdir(parents=True)
    shutil.copy(REPO / "start.py", src / "start.py")
    shutil.copytree(REPO / "Applications" / "Chat", src / "Applications" / "Chat",
                    ignore=shutil.ignore_patterns("__pycache__", "gwgevent.*"))
    return src


def make_chat(apps: Any, tmp_path: Path, env: Optional[Dict[str, str]] = None) -> Any:
    """An App (tests/helpers.py) for the demo with .web_port / .gateway_port / .register_port."""
    register, gateway, inner, _inner2, web = port_block(5)
    full = {"CHAT_REGISTER_PORT": register, "CHAT_GATEWAY_PORT": gateway,
            "CHAT_GATEWAY_HOST": "127.0.0.1", "CHAT_GATEWAY_START_PORT": inner,
            "CHAT_WEB_PORT": web}
    full.update(env or {})
    app = apps("chat", "start.py", env=full, ports=[register, gateway, inner, inner + 1, web],
               source=stage_chat(tmp_path))
    app.web_port, app.gateway_port, app.register_port = web, gateway, register
    return app
