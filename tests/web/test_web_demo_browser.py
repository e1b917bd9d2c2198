"""The web demo in a real browser: tools/web_demo.py serves the tiny random ODISE, PNG and VPD
depth models in one subprocess; headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright, no browser download) uploads a shapes-world image and checks each tab's result,
the error messages for bad input, and that neither the page nor the server talks to anything but
the app (page: every browser request; server: HTTP(S)_PROXY points at a listener that must see no
connection)."""
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ODISE_EXT_CHROMIUM", "/usr/bin/chromium")
INSTALL = ("install the browser and its driver with `apt-get update && apt-get install -y chromium` and "
           "`pip install -e .[test]` (gradio, playwright); never `playwright install`")
# Set to a path (e.g. docs/web_demo_odise.png) to also write the screenshot of docs/web-demo.md there.
DOCS_SHOT = os.environ.get("ODISE_EXT_WEB_DEMO_SCREENSHOT", "")

if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}: {INSTALL}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=f"Playwright is not installed: {INSTALL}")
pytest.importorskip("gradio", reason=f"Gradio is not installed: {INSTALL}")

CONFIGS = ["configs/testing/odise_tiny.yaml", "configs/testing/png_tiny.yaml", "configs/testing/vpd_depth_tiny.yaml"]
# Reproducible random heads (unseeded, the untrained ODISE sometimes keeps no segment, and the
# legend is checked against the vocabulary).
OPTS = ["SEED", "0"]
STARTUP_S = 300  # three models built on a busy CPU; only a ceiling, the test does not time anything


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ConnectionRecorder:
    """A local listener standing in for an HTTP(S) proxy: it counts the connections made to it
    (and answers none), so a server started with HTTP(S)_PROXY pointing here shows whether it tried
    to reach the internet through the usual Python HTTP clients."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("web_demo") / "server.log"
    proxy = _ConnectionRecorder()
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               GRADIO_TEMP_DIR=str(log.parent / "gradio"), OMP_NUM_THREADS="1",
               HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url, http_proxy=proxy.url, https_proxy=proxy.url,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "tools/web_demo.py", "--config-file", *CONFIGS, "--port", str(port),
                                 "--opts", *OPTS],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"web demo exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"web demo did not answer on {url}:\n{log.read_text()[-4000:]}")
                time.sleep(1)
        yield url, proc, proxy
    finally:
        proxy.sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    url = server[0]
    requests = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.on("request", lambda r: requests.append(r.url))
        pg.set_default_timeout(60_000)
        pg.goto(url)
        pg.wait_for_load_state("networkidle")
        pg.requests = requests
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def shapes_image(shapes_root):
    path = sorted((Path(shapes_root) / "images" / "val").glob("*.jpg"))[0]
    return path, np.asarray(Image.open(path).convert("RGB"))


def _open_tab(page, name):
    """A freshly loaded page (empty inputs) showing the tab ``name``."""
    page.reload()
    page.wait_for_load_state("networkidle")
    page.get_by_role("tab", name=name).click()


def _wait(page, locator, state="visible"):
    """``locator.wait_for``; on time-out the failure shows the page's text (error toasts)."""
    try:
        locator.wait_for(state=state)
    except sync_api.TimeoutError:
        pytest.fail(f"timed out waiting for {locator}; the page says:\n{page.inner_text('body')[-3000:]}")


def _upload(page, prefix, path):
    page.set_input_files(f"#{prefix}-image input[type=file]", str(path))
    # the file name is shown split into stem and suffix elements
    _wait(page, page.locator(f"#{prefix}-image").get_by_text(Path(path).stem).first)


def _result_image(page, prefix):
    img = page.locator(f"#{prefix}-output img").first
    _wait(page, img)
    data = page.request.get(img.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _differs(out, inp):
    return out.shape != inp.shape or np.abs(out.astype(int) - inp.astype(int)).mean() > 1.0


def _expect_error(page, pattern):
    _wait(page, page.get_by_text(re.compile(pattern, re.IGNORECASE)).first)


def _shoot(page, tmp_path, name):
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_page_says_weights_are_random(page):
    assert "weights are random" in page.inner_text("#odise-about")


def test_odise_tab(page, shapes_image, tmp_path):
    path, rgb = shapes_image
    _open_tab(page, "Open-vocabulary panoptic segmentation")
    _upload(page, "odise", path)
    page.fill("#odise-vocab textarea", "circle;square,box;sky;grass")
    page.get_by_label("every class is a thing").check()
    page.click("#odise-run")
    _wait(page, page.locator("#odise-legend .legend-class").first)
    out = _result_image(page, "odise")
    assert _differs(out, rgb)
    found = page.locator("#odise-legend .legend-class").all_inner_texts()
    assert found and set(found) <= {"circle", "square", "sky", "grass"}
    assert "segments of" in page.inner_text("#odise-status")
    _shoot(page, tmp_path, "odise")
    if DOCS_SHOT:
        shot = Image.open(tmp_path / "odise.png").convert("RGB")
        shot.thumbnail((900, 900))
        shot.quantize(colors=128).save(REPO / DOCS_SHOT, optimize=True)

    page.fill("#odise-vocab textarea", "")
    page.click("#odise-run")
    _expect_error(page, "empty vocabulary")
    page.fill("#odise-vocab textarea", "cat;cat,kitty")
    page.click("#odise-run")
    _expect_error(page, "appears twice")


def test_bad_upload_is_reported(page, tmp_path):
    _open_tab(page, "Open-vocabulary panoptic segmentation")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    _upload(page, "odise", bad)
    page.fill("#odise-vocab textarea", "circle;sky")
    page.get_by_label("every class is a thing").check()
    page.click("#odise-run")
    _expect_error(page, "not an image")


def test_png_tab(page, shapes_image, tmp_path):
    path, rgb = shapes_image
    _open_tab(page, "Panoptic narrative grounding")
    _upload(page, "png", path)
    page.fill("#png-narrative textarea", "In this picture we can see a red circle and two squares on the grass.")
    page.wait_for_function("document.querySelector('#png-phrases textarea').value.includes('grass')")
    page.click("#png-run")
    _wait(page, page.locator("#png-caption .phrase").first)
    out = _result_image(page, "png")
    assert _differs(out, rgb)
    phrases = page.locator("#png-caption .phrase").all_inner_texts()
    assert phrases == ["red circle", "squares", "grass"]
    colors = {page.locator("#png-caption .phrase").nth(i).get_attribute("style") for i in range(len(phrases))}
    assert len(colors) == len(phrases)  # one colour per phrase
    _shoot(page, tmp_path, "png")

    page.fill("#png-narrative textarea", "")
    page.fill("#png-phrases textarea", "")
    page.click("#png-run")
    _expect_error(page, "empty narrative")


def test_depth_tab(page, shapes_image, tmp_path):
    path, rgb = shapes_image
    _open_tab(page, "Depth estimation")
    _upload(page, "depth", path)
    page.click("#depth-run")
    _wait(page, page.locator("#depth-status").get_by_text("Depth range"))
    out = _result_image(page, "depth")
    assert _differs(out, rgb)
    assert re.search(r"Depth range [\d.]+ m to [\d.]+ m", page.inner_text("#depth-status"))
    _shoot(page, tmp_path, "depth")


def test_no_request_leaves_the_machine(page, server):
    host = urlparse(server[0]).netloc
    assert page.requests
    outside = [u for u in page.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).netloc != host]
    assert not outside, outside


def test_server_survived_and_stayed_offline(server):
    assert server[1].poll() is None
    assert server[2].count == 0, "the app tried to reach the internet (through HTTP(S)_PROXY)"
