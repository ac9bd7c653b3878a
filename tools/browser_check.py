"""Real-browser check: JupyterLab on the loopback, driven by headless Chromium through Playwright.

What it does (``check()``):

1. copies the chosen notebooks into a temp folder and sets ``profile = "smoke"`` in the copies' ``parameters``
   cell (the real notebooks are never touched); ``XMR_RUN_DIR`` points into the temp folder;
2. starts ``jupyter lab`` on 127.0.0.1 (free port, no token, ``expose_app_in_browser``) with its own settings and
   workspaces folders (no news, no update check, notebook windowing off so that every cell stays in the DOM);
3. opens each notebook in Chromium (Debian's ``/usr/bin/chromium``; Playwright's own browser download is not
   used), runs all cells, waits for every code cell to have run and the kernel to be idle, then runs all again in
   the same live kernel;
4. in the explorer notebook, moves the explorer's widgets (a dropdown, then a slider) and checks that the image in
   the explorer's output area is redrawn (its ``src`` changes);
5. saves each notebook through the app, reads the ``.ipynb`` back from disk and checks that no output is an error
   (also the live model, and the DOM for widget-rendering errors and tracebacks in Output widgets);
6. writes screenshots (whole window after each notebook, explorer before / after each move) and a log.

Command line (the test in ``tests/test_browser.py`` calls the same function)::

    .venv/bin/python -m tools.browser_check --out /tmp/xmr_screens

Needs the ``playwright`` Python package (``pip install playwright``; its browser download is not needed) and a
Chromium binary (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_NOTEBOOKS = ("00_getting_started", "09_crossmedia_prf_mmr")
EXPLORER_NOTEBOOK = "09_crossmedia_prf_mmr"


class BrowserCheckError(AssertionError):
    """A check of the real-browser run failed (the message says which, and where the screenshots are)."""


def chromium_path() -> str | None:
    """The Chromium to drive: ``$XMR_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else one on PATH."""
    for c in (os.environ.get("XMR_CHROMIUM"), CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def unavailable_reason() -> str | None:
    """Why the check cannot run here (``None`` when it can)."""
    why = os.environ.get("XMR_BROWSER_UNAVAILABLE", "")  # set by .ci/run when it could not install something
    why = f" ({why})" if why else ""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the Python package 'playwright' is not installed (.venv/bin/pip install playwright; its own "
            "browser download is not needed)" + why
        )
    if chromium_path() is None:
        return (
            "no Chromium binary (/usr/bin/chromium): install it with `apt-get install chromium` as root "
            "(.ci/run does)" + why
        )
    return None


# ----------------------------------------------------------------------------------------------------------------
# the notebooks and the server


def smoke_copy(src: Path, dst_dir: Path, profile: str = "smoke") -> Path:
    """Copy ``src`` into ``dst_dir`` with ``profile = "<profile>"`` in its ``parameters`` cell."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            new, n = re.subn(r'(?m)^profile\s*=\s*["\'][^"\']*["\']', f'profile = "{profile}"', text)
            if n != 1:
                raise BrowserCheckError(f"{src.name}: no `profile = \"...\"` line in the parameters cell")
            cell["source"] = new
            break
    else:
        raise BrowserCheckError(f"{src.name}: no cell tagged 'parameters'")
    for cell in nb["cells"]:  # start from a clean notebook: no stored outputs or execution counts
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    dst = dst_dir / src.name
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return dst


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A JupyterLab server started by ``start_lab`` (stop it with ``stop()``)."""

    proc: subprocess.Popen
    url: str
    root: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:  # let the server shut its kernels down itself
                req = urllib.request.Request(self.url + "api/shutdown", method="POST", data=b"")
                urllib.request.urlopen(req, timeout=10).read()
                self.proc.wait(timeout=20)
            except Exception:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this module started (server and kernels)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def start_lab(root: Path, work: Path, run_dir: Path, timeout: float = 90) -> Lab:
    """JupyterLab on 127.0.0.1 serving ``root``, with settings, workspaces and runtime files under ``work``."""
    settings = work / "lab-settings"
    for rel, body in {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(body))
    env = dict(os.environ)
    env.update(
        XMR_RUN_DIR=str(run_dir),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"),
        JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("XMR_NOTEBOOK", None)
    # OpenMP threads that spin while they wait make a 500-point t-SNE take 75 s instead of 6 s on a busy 2-core
    # machine (the CI machines are shared); passive waiting changes no result
    env.setdefault("OMP_WAIT_POLICY", "passive")
    port = free_port()
    log = work / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--ServerApp.root_dir={root}",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.open_browser=False",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.disable_check_xsrf=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    lab = Lab(proc, url, root, log)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise BrowserCheckError(f"jupyter lab exited with code {proc.returncode}:\n{_tail(log)}")
        try:
            urllib.request.urlopen(url + "api/status", timeout=5).read()
            return lab
        except OSError:
            time.sleep(0.5)
    lab.stop()
    raise BrowserCheckError(f"jupyter lab did not answer on {url} within {timeout:.0f} s:\n{_tail(log)}")


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# ----------------------------------------------------------------------------------------------------------------
# in the page (JupyterLab 4: window.jupyterapp is the app)

_JS_OPEN = """async (path) => {
  const app = window.jupyterapp;
  await app.restored;
  const w = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await w.context.ready;
  await w.sessionContext.ready;
  app.shell.activateById(w.id);
  window.__xmr_nb = w;
  return w.id;
}"""

# clear every code cell (outputs and execution count), then start "run all"; its promise sets __xmr_run
_JS_RUN_ALL = """async () => {
  const app = window.jupyterapp, w = window.__xmr_nb;
  app.shell.activateById(w.id);
  for (const c of w.content.widgets) {
    if (c.model.type === 'code') { c.model.outputs.clear(); c.model.executionCount = null; }
  }
  window.__xmr_run = null;
  app.commands.execute('notebook:run-all-cells').then(
    (r) => { window.__xmr_run = 'done:' + r; }, (e) => { window.__xmr_run = 'failed:' + e; });
}"""

_JS_RUN_FINISHED = """() => {
  const w = window.__xmr_nb;
  if (window.__xmr_run === null) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.status !== 'idle') return false;
  const cells = w.content.widgets.filter((c) => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
  const errors = cells.some((c) => c.model.outputs.toJSON().some((o) => o.output_type === 'error'));
  return errors || window.__xmr_run.startsWith('failed') || cells.every((c) => c.model.executionCount !== null);
}"""

_JS_STATE = """() => {
  const w = window.__xmr_nb;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.widgets.map((c, i) => ({i, c})).filter(
    ({c}) => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
  return {
    run: window.__xmr_run, kernel: k ? k.status : null,
    not_run: cells.filter(({c}) => c.model.executionCount === null).map(({i}) => i),
    errors: cells.flatMap(({c, i}) => c.model.outputs.toJSON().filter((o) => o.output_type === 'error').map(
      (o) => ({cell: i, ename: o.ename, evalue: String(o.evalue).slice(0, 500)}))),
    counts: cells.map(({c}) => c.model.executionCount),
  };
}"""

# DOM: widgets that failed to render, tracebacks shown inside widget Output areas
_JS_DOM_ERRORS = """() => {
  const w = window.__xmr_nb, out = [];
  for (const el of w.node.querySelectorAll('.jp-OutputArea-output')) {
    const t = el.innerText || '';
    if (/Error displaying widget|Failed to load model class|Error rendering output|Could not render content/.test(t))
      out.push(t.slice(0, 300));
  }
  for (const el of w.node.querySelectorAll('.widget-output [data-mime-type="application/vnd.jupyter.stderr"]')) {
    const t = el.innerText || '';
    if (/Traceback|Error/.test(t)) out.push(t.slice(0, 500));
  }
  return out;
}"""

_JS_MARK_EXPLORER = """() => {
  const w = window.__xmr_nb;
  for (const el of w.node.querySelectorAll('[data-xmr-explorer]')) el.removeAttribute('data-xmr-explorer');
  for (const c of w.content.widgets) {
    if (c.model.type === 'code' && c.node.querySelector('.widget-output') &&
        c.node.querySelector('.widget-dropdown select, .widget-slider')) {
      c.node.setAttribute('data-xmr-explorer', '1');
      return w.content.widgets.indexOf(c);
    }
  }
  return -1;
}"""

_JS_IMG = """() => {
  const img = document.querySelector('[data-xmr-explorer] .widget-output img');
  return img ? img.getAttribute('src') : null;
}"""


@dataclass
class Report:
    out: Path
    seconds: dict = field(default_factory=dict)
    screenshots: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        t = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        return f"screenshots in {self.out} ({len(self.screenshots)} files); times: {t}"


def _save_ipynb_errors(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                found.append(f"cell {i}: {o.get('ename')}: {str(o.get('evalue'))[:300]}")
    return found


def check(
    out: Path,
    notebooks=DEFAULT_NOTEBOOKS,
    explorer: str | None = EXPLORER_NOTEBOOK,
    runs: int = 2,
    run_timeout: float = 300,
    redraw_timeout: float = 90,
    work: Path | None = None,
    log=print,
) -> Report:
    """Run the whole check; raises ``BrowserCheckError`` on the first failed check (screenshots are kept)."""
    from playwright.sync_api import TimeoutError as PWTimeout
    from playwright.sync_api import sync_playwright

    why = unavailable_reason()
    if why:
        raise BrowserCheckError(why)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(out)
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="xmr_browser_")) if own_work else Path(work)
    nb_dir, run_dir = work / "notebooks", work / "run"
    nb_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in notebooks:
        smoke_copy(ROOT / "notebooks" / f"{name}.ipynb", nb_dir)

    t_all = time.time()
    lab = start_lab(nb_dir, work, run_dir)
    rep.seconds["lab start"] = time.time() - t_all
    log(f"browser_check: JupyterLab at {lab.url} (root {nb_dir}), screenshots -> {out}")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", lambda m: m.type == "error" and rep.console_errors.append(m.text[:500]))
                page.on("pageerror", lambda e: rep.console_errors.append(f"pageerror: {str(e)[:500]}"))
                page.goto(lab.url + "lab", wait_until="domcontentloaded", timeout=120_000)
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
                page.evaluate("async () => { await window.jupyterapp.restored; }")
                for name in notebooks:
                    _one_notebook(
                        page, name, nb_dir, rep, runs, run_timeout, redraw_timeout, explorer == name, log, PWTimeout
                    )
            finally:
                browser.close()
    finally:
        lab.stop()
        shutil.copy(lab.log, out / "jupyterlab.log")
        (out / "console_errors.txt").write_text("\n".join(rep.console_errors) + "\n")
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    rep.seconds["total"] = time.time() - t_all
    return rep


def _shot(page_or_locator, rep: Report, name: str, **kw) -> None:
    p = rep.out / f"{name}.png"
    page_or_locator.screenshot(path=str(p), **kw)
    rep.screenshots.append(p)


def _one_notebook(page, name, nb_dir, rep, runs, run_timeout, redraw_timeout, is_explorer, log, PWTimeout):
    t0 = time.time()
    page.evaluate(_JS_OPEN, f"{name}.ipynb")
    page.wait_for_function(
        "() => { const k = window.__xmr_nb.sessionContext.session && "
        "window.__xmr_nb.sessionContext.session.kernel; return k && k.status === 'idle'; }",
        timeout=120_000,
        polling=500,
    )
    rep.seconds[f"{name} open"] = time.time() - t0
    for r in range(1, runs + 1):
        t1 = time.time()
        page.evaluate(_JS_RUN_ALL)
        try:
            page.wait_for_function(_JS_RUN_FINISHED, timeout=run_timeout * 1000, polling=1000)
        except PWTimeout:
            _shot(page, rep, f"{name}_run{r}_timeout")
            raise BrowserCheckError(
                f"{name}: run {r} of all cells did not finish within {run_timeout:.0f} s: "
                f"{page.evaluate(_JS_STATE)}; screenshots in {rep.out}"
            ) from None
        page.wait_for_timeout(500)  # let the last outputs render
        st = page.evaluate(_JS_STATE)
        rep.seconds[f"{name} run {r}"] = time.time() - t1
        log(f"browser_check: {name} run {r}: {time.time() - t1:.0f} s, {len(st['counts'])} code cells")
        if st["errors"] or st["not_run"]:
            _shot(page, rep, f"{name}_run{r}_error")
            raise BrowserCheckError(
                f"{name}, run {r} of all cells: errors {st['errors']}, cells not run "
                f"{st['not_run']}; screenshots in {rep.out}"
            )
        dom = page.evaluate(_JS_DOM_ERRORS)
        if dom:
            _shot(page, rep, f"{name}_run{r}_error")
            raise BrowserCheckError(f"{name}, run {r}: errors shown in the page: {dom}; screenshots in {rep.out}")
    _shot(page, rep, f"{name}_after_run{runs}")
    if is_explorer:
        _move_explorer(page, name, rep, redraw_timeout, log, PWTimeout)
    # save through the app and read the file back
    page.evaluate("async () => { await window.__xmr_nb.context.save(); }")
    errs = _save_ipynb_errors(nb_dir / f"{name}.ipynb")
    if errs:
        raise BrowserCheckError(f"{name}: the saved notebook has error outputs: {errs}")
    saved = json.loads((nb_dir / f"{name}.ipynb").read_text())
    n_out = sum(len(c.get("outputs", [])) for c in saved["cells"] if c["cell_type"] == "code")
    if n_out == 0:
        raise BrowserCheckError(f"{name}: the saved notebook has no outputs at all (was it saved after the run?)")
    shutil.copy(nb_dir / f"{name}.ipynb", rep.out / f"{name}.ipynb")
    page.evaluate("async () => { const w = window.__xmr_nb; await w.sessionContext.shutdown(); w.dispose(); }")
    rep.seconds[f"{name} total"] = time.time() - t0


def _move_explorer(page, name, rep, redraw_timeout, log, PWTimeout):
    idx = page.evaluate(_JS_MARK_EXPLORER)
    if idx < 0:
        _shot(page, rep, f"{name}_no_explorer")
        raise BrowserCheckError(
            f"{name}: no explorer (a cell with an ipywidgets dropdown / slider and an Output) "
            f"was rendered; screenshots in {rep.out}"
        )
    cell = page.locator("[data-xmr-explorer]")
    area = cell.locator(".jp-Cell-outputWrapper").first  # the widgets and the grid (the cell's code is long)
    area.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    _shot(area, rep, f"{name}_explorer_before")
    _shot(page, rep, f"{name}_explorer_page_before")

    def wait_redraw(before, what):
        try:
            page.wait_for_function(
                f"(b) => {{ const s = ({_JS_IMG})(); return s && s !== b; }}",
                arg=before,
                timeout=redraw_timeout * 1000,
                polling=250,
            )
        except PWTimeout:
            _shot(area, rep, f"{name}_explorer_no_redraw")
            dom = page.evaluate(_JS_DOM_ERRORS)
            raise BrowserCheckError(
                f"{name}: the explorer's image did not change within {redraw_timeout:.0f} s "
                f"after {what}; errors in the page: {dom}; screenshots in {rep.out}"
            ) from None
        # then until the kernel is idle and the image has stayed the same for a second (a drag can queue redraws)
        last, since, t0 = None, time.time(), time.time()
        while time.time() - t0 < redraw_timeout:
            src = page.evaluate(_JS_IMG)
            idle = page.evaluate(
                "() => { const k = window.__xmr_nb.sessionContext.session.kernel; return k && k.status === 'idle'; }"
            )
            if src != last or not idle:
                last, since = src, time.time()
            elif time.time() - since >= 1.0:
                break
            page.wait_for_timeout(250)
        return last

    # 1. the dropdown: pick the next option
    t0 = time.time()
    before = page.evaluate(_JS_IMG)
    select = cell.locator(".widget-dropdown select").first
    n_opts = select.locator("option").count()
    cur = select.evaluate("(s) => s.selectedIndex")
    select.select_option(index=(cur + 1) % n_opts)
    after = wait_redraw(before, "choosing another option of the dropdown")
    rep.seconds[f"{name} redraw (dropdown)"] = time.time() - t0
    area.scroll_into_view_if_needed()
    _shot(area, rep, f"{name}_explorer_after_dropdown")

    # 2. a slider: drag its handle to the right (keyboard arrows as a fallback)
    t0 = time.time()
    slider = cell.locator(".widget-slider").first
    readout = slider.locator(".widget-readout")
    value0 = readout.inner_text() if readout.count() else None
    handle = slider.locator(".noUi-handle").first
    box = handle.bounding_box()
    track = slider.locator(".noUi-target, .slider").first.bounding_box()
    if box and track:
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] / 2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + max(20, track["width"] / 4), y, steps=2)
        page.mouse.up()
    for key in ("ArrowRight", "ArrowLeft"):  # keyboard fallback (e.g. a slider already at its maximum)
        if readout.count() and readout.inner_text() == value0:
            handle.focus()
            for _ in range(3):
                handle.press(key)
    value1 = readout.inner_text() if readout.count() else None
    if value1 == value0:
        raise BrowserCheckError(f"{name}: the explorer's slider did not move (value {value0!r})")
    wait_redraw(after, f"moving the slider from {value0} to {value1}")
    rep.seconds[f"{name} redraw (slider)"] = time.time() - t0
    log(f"browser_check: {name} explorer redrew after the dropdown and the slider ({value0} -> {value1})")
    area.scroll_into_view_if_needed()
    _shot(area, rep, f"{name}_explorer_after_slider")
    _shot(page, rep, f"{name}_explorer_page_after")
    dom = page.evaluate(_JS_DOM_ERRORS)
    if dom:
        raise BrowserCheckError(f"{name}: errors shown in the explorer after moving its widgets: {dom}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        default=os.environ.get("XMR_SCREENSHOTS", "/tmp/xmr_screens"),
        help="folder for the screenshots and logs (default: $XMR_SCREENSHOTS or /tmp/xmr_screens)",
    )
    ap.add_argument("--notebooks", nargs="+", default=list(DEFAULT_NOTEBOOKS))
    ap.add_argument("--explorer", default=EXPLORER_NOTEBOOK)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args(argv)
    why = unavailable_reason()
    if why:
        print(f"browser_check: cannot run: {why}", file=sys.stderr)
        return 2
    rep = check(Path(a.out), a.notebooks, a.explorer, a.runs)
    print(f"browser_check: OK; {rep.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
