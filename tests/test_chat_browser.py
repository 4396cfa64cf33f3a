"""The Chat demo in a real browser (headless Chromium driven by Selenium, fresh profile each):
directly on the page server (http/ws) and through the real nginx site from
deploy/nginx/gwgevent-chat.conf (https/wss, self-signed certificate made here).

Two pages (alice, bob) in room 1 see each other; a room message and a private message land
where they should and nowhere else (observers: a websocket client in room 1 and one in room 2);
`reload` keeps both pages connected; `restart -d` makes them reconnect with exactly two names in
the online list. Screenshots go to tests/.artifacts/<test>/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from chat_app import PROCESSES, make_chat
from cluster import WsClient, port_block
from helpers import REPO, apps, port_listening, wait_for  # noqa: F401 (fixture)

ARTIFACTS = REPO / "tests" / ".artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
SITE = REPO / "deploy" / "nginx" / "gwgevent-chat.conf"
#: nginx talks to the gateway from this address (proxy_bind), the browser comes from
#: 127.0.0.1: the app must report 127.0.0.1, which only trusted_proxies can tell it
PROXY_SOURCE = "127.0.0.3"

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs the chromium and chromium-driver binaries "
                                       "(Debian packages; .ci/run installs them)")


# ------------------------------------------------------------------ browser
class Page:
    """One Chromium with its own profile, on the chat page as `name`."""

    def __init__(self, url: str, name: str, profile: Path, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--user-data-dir=%s" % profile, "--no-first-run",
                    "--ignore-certificate-errors", "--window-size=900,600"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(20)
        self.name, self.shots = name, shots
        self.driver.get(url + ("&" if "?" in url else "?") + "name=" + name)

    def js(self, script: str):
        return self.driver.execute_script(script)

    def users(self) -> list:
        return sorted(self.js("return Array.from(document.querySelectorAll('#users li'))"
                              ".map(li => li.textContent)"))

    def connects(self) -> int:
        return self.js("return window.chatConnects") or 0

    def log(self) -> str:
        return self.js("return document.getElementById('log').textContent")

    def state(self) -> str:
        return self.js("return document.getElementById('state').textContent")

    def say(self, text: str, to: str = "everyone") -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        for attempt in range(5):
            # the page rebuilds the <select> whenever someone joins or leaves
            try:
                Select(self.driver.find_element(By.ID, "to")).select_by_visible_text(to)
                break
            except StaleElementReferenceException:
                if attempt == 4:
                    raise
        box = self.driver.find_element(By.ID, "text")
        box.send_keys(text)
        self.driver.find_element(By.CSS_SELECTOR, "#f button").click()

    def console_errors(self) -> list:
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def shot(self, step: str) -> None:
        self.driver.save_screenshot(str(self.shots / ("%s-%s.png" % (step, self.name))))

    def close(self) -> None:
        try:
            self.driver.quit()
        except Exception:
            pass


@pytest.fixture
def pages(tmp_path, request):
    shots = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    made = []

    def open_page(url: str, name: str) -> Page:
        page = Page(url, name, tmp_path / ("profile-" + name), shots)
        made.append(page)
        return page

    yield open_page
    for page in made:
        try:
            page.shot("final")
        except Exception:
            pass
        page.close()


# ------------------------------------------------------------------ nginx
class Nginx:
    """deploy/nginx/gwgevent-chat.conf on free ports in a private prefix (daemon off)."""

    def __init__(self, prefix: Path, web_port: int, gateway_port: int) -> None:
        from test_runtime_tls import make_self_signed
        self.http_port, self.https_port = port_block(2)
        cert, key = make_self_signed(str(prefix))
        site = SITE.read_text()
        subs = [
            ("server 127.0.0.1:7272;", "server 127.0.0.1:%d;" % gateway_port),
            ("server 127.0.0.1:55151;", "server 127.0.0.1:%d;" % web_port),
            ("listen 80;", "listen 127.0.0.1:%d;" % self.http_port),
            ("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % self.https_port),
            ("/etc/ssl/certs/chat.example.com.pem", cert),
            ("/etc/ssl/private/chat.example.com.key", key),
            ("    server_name chat.example.com;\n",
             "    server_name chat.example.com;\n    proxy_bind %s;\n" % PROXY_SOURCE),
        ]
        for old, new in subs:
            assert site.count(old) == 1, "deploy/nginx site changed shape: %r" % old
            site = site.replace(old, new)
        (prefix / "site.conf").write_text(site)
        for d in ("logs", "tmp"):
            (prefix / d).mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join("%s_temp_path %s/tmp/%s;\n" % (k, prefix, k)
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (prefix / "nginx.conf").write_text(
            "%sworker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/logs/error.log;"
            "\nevents { worker_connections 256; }\nhttp {\naccess_log %s/logs/access.log;\n%s"
            "include %s/site.conf;\n}\n" % (user, prefix, prefix, prefix, temp, prefix))
        self.prefix = prefix
        self.proc = subprocess.Popen([NGINX, "-p", str(prefix), "-e", str(prefix / "logs" /
                                      "error.log"), "-c", str(prefix / "nginx.conf")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is not None or
                     (port_listening(self.http_port) and port_listening(self.https_port)),
                     10, "nginx to listen")
            assert self.proc.poll() is None, "nginx exited: %s\n%s" % (
                self.proc.stdout.read().decode(errors="replace"), self.error_log())
        except BaseException:
            self.stop()
            raise

    def error_log(self) -> str:
        try:
            return (self.prefix / "logs" / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # workers, if the master went first
        except OSError:
            pass
        self.proc.wait(5)
        wait_for(lambda: not port_listening(self.http_port) and
                 not port_listening(self.https_port), 5, "nginx ports released")


# ------------------------------------------------------------------ the scenario
def observer(app, room: str, name: str) -> WsClient:
    """A websocket client logged into `room` through the page server's /ws."""
    c = WsClient(app.web_port, path="/ws?room_id=" + room)
    c.send(json.dumps({"type": "login", "client_name": name, "room_id": room}))
    c.take_json(lambda d: d.get("type") == "login" and "client_list" in d, 10, "login reply")
    return c


def fence(c: WsClient, room: str) -> list:
    """Everything `c` received before its own room message came back. Messages the server
    queued to `c` earlier than this (a room or private message) arrive before it."""
    token = "fence-%s-%f" % (room, time.monotonic())
    c.send(json.dumps({"type": "say", "to_client_id": "all", "content": token}))
    seen = []
    while True:
        msg = json.loads(c.take(timeout=10, what="fence %s" % token)[1])
        if msg.get("type") == "say" and msg.get("content") == token:
            return seen
        seen.append(msg)


def run_scenario(app, base_url: str, open_page, expect_ip: str) -> None:
    alice = open_page(base_url + "?room_id=1", "alice")
    bob = open_page(base_url + "?room_id=1", "bob")
    both = (alice, bob)
    for p in both:
        wait_for(lambda p=p: p.users() == ["alice", "bob"], 20,
                 "%s's online list to show alice and bob (have %r)" % (p.name, p.users()))
        p.shot("joined")
        assert p.console_errors() == [], "console errors on %s's page" % p.name
    # the app saw the browser's address, not a proxy's
    log = app.wait_log("bob joined room 1 from ", 10)
    assert "alice joined room 1 from %s" % expect_ip in log, app.log_tail()
    assert "joined room 1 from %s" % PROXY_SOURCE not in log

    room1, room2 = observer(app, "1", "dave"), observer(app, "2", "carol")
    try:
        for p in both:   # dave (room 1) is listed, carol (room 2) is not
            wait_for(lambda p=p: p.users() == ["alice", "bob", "dave"], 10,
                     "%s's list to show dave (have %r)" % (p.name, p.users()))
        alice.say("hello room")
        wait_for(lambda: "alice: hello room" in bob.log(), 10, "bob to get the room message")
        wait_for(lambda: "alice: hello room" in alice.log(), 10, "alice to see her message")
        alice.say("psst bob", to="bob")
        wait_for(lambda: "to you: psst bob" in bob.log(), 10, "bob to get the private message")
        wait_for(lambda: "you to bob: psst bob" in alice.log(), 10, "alice's private copy")
        for p in both:
            p.shot("messages")
        got1 = [m.get("content", "") for m in fence(room1, "1")]
        got2 = [m.get("content", "") for m in fence(room2, "2")]
        assert "hello room" in got1, got1                      # dave is in room 1
        assert not any("psst" in c for c in got1), got1        # ... not in the private talk
        assert not any("hello room" in c or "psst" in c for c in got2), got2   # room 2
    finally:
        room1.close()
        room2.close()
    for p in both:       # dave's logout reached the pages
        wait_for(lambda p=p: p.users() == ["alice", "bob"], 10,
                 "%s's list without dave (have %r)" % (p.name, p.users()))

    # reload: business workers are replaced, client connections stay
    before = set(app.workers("ChatBusinessWorker").values())
    app.cli("reload", check=True)
    wait_for(lambda: len(app.workers("ChatBusinessWorker")) == 2 and not
             before & set(app.workers("ChatBusinessWorker").values()), 20,
             "both business workers to be replaced")
    bob.say("after reload")
    wait_for(lambda: "bob: after reload" in alice.log(), 10, "a message after the reload")
    for p in both:
        assert p.connects() == 1, "%s's page reconnected during reload" % p.name
        assert p.users() == ["alice", "bob"]
        p.shot("reloaded")

    # restart: every connection drops; pages come back, and the list has no leftovers
    app.cli("restart", "-d", check=True)
    app.wait_up(PROCESSES, timeout=20)
    for p in both:
        wait_for(lambda p=p: p.connects() == 2 and p.users() == ["alice", "bob"], 30,
                 "%s's page to reconnect with alice and bob listed once (connects=%r, "
                 "list=%r)" % (p.name, p.connects(), p.users()))
        p.shot("restarted")
    alice.say("after restart")
    wait_for(lambda: "alice: after restart" in bob.log(), 10, "a message after the restart")


def test_chat_in_browser_direct(apps, tmp_path, pages):
    app = make_chat(apps, tmp_path)
    app.start_daemon(PROCESSES)
    run_scenario(app, "http://127.0.0.1:%d/" % app.web_port, pages, "127.0.0.1")


@pytest.mark.skipif(not NGINX, reason="needs the nginx binary (Debian package nginx; "
                                      ".ci/run installs it)")
def test_chat_in_browser_through_nginx_https(apps, tmp_path, pages):
    pytest.importorskip("cryptography")
    # only nginx's (bound) address is a trusted proxy
    app = make_chat(apps, tmp_path, {"CHAT_TRUSTED_PROXIES": PROXY_SOURCE})
    app.start_daemon(PROCESSES)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    nginx = Nginx(prefix, app.web_port, app.gateway_port)
    try:
        run_scenario(app, "https://127.0.0.1:%d/" % nginx.https_port, pages, "127.0.0.1")
        # the pages' websockets really went through nginx (101 = upgraded)
        access = (prefix / "logs" / "access.log").read_text(errors="replace")
        assert re.search(r'"GET /ws\?room_id=1 HTTP/1.1" 101 ', access), access[-2000:]
    finally:
        nginx.stop()
