"""Real browser: JupyterLab on the loopback, notebooks 00 and 09 (its ipywidgets explorer) in headless Chromium.

Runs all cells twice (the second time in the live kernel), moves the explorer's dropdown and a slider and checks
that its grid is redrawn, saves each notebook and checks that no output is an error. Screenshots go to a folder
under pytest's tmp path (printed) and are copied to ``$XMR_SCREENSHOTS`` when set. The logic is in
``tools/browser_check.py`` (also a command: ``.venv/bin/python -m tools.browser_check --out DIR``).

Needs the ``playwright`` package and a Chromium binary (``/usr/bin/chromium`` from Debian's ``chromium``; .ci/run
installs both); without them the test is skipped with the reason.
"""

import os
import shutil
from pathlib import Path

import pytest

from tools import browser_check


@pytest.mark.notebook
@pytest.mark.slow
def test_notebooks_in_a_real_browser(tmp_path, capsys):
    why = browser_check.unavailable_reason()
    if why:
        pytest.skip(f"real-browser test not run: {why}")
    out = tmp_path / "screenshots"
    dest = os.environ.get("XMR_SCREENSHOTS")
    with capsys.disabled():  # shown even when the test passes
        print(f"\nbrowser test: screenshots in {out}" + (f" (copied to {dest})" if dest else ""))
    failure = rep = None
    try:
        rep = browser_check.check(out, work=tmp_path / "work")
    except browser_check.BrowserCheckError as e:
        failure = e
    finally:
        if dest and out.is_dir():
            shutil.copytree(out, Path(dest), dirs_exist_ok=True)
    if failure is not None:
        pytest.fail(str(failure), pytrace=False)
    with capsys.disabled():
        print(f"browser test: {rep.summary()}")
        if rep.console_errors:
            print(
                f"browser test: {len(rep.console_errors)} browser console errors (not failures), "
                f"see {out / 'console_errors.txt'}"
            )
    for name in browser_check.DEFAULT_NOTEBOOKS:
        assert (out / f"{name}_after_run2.png").is_file()
    assert (out / f"{browser_check.EXPLORER_NOTEBOOK}_explorer_before.png").is_file()
    assert (out / f"{browser_check.EXPLORER_NOTEBOOK}_explorer_after_slider.png").is_file()
