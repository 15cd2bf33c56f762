"The committed notebooks open in JupyterLab as they are: a reader sees them unmodified."

import importlib.util, json, platform, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('clipkit_docs_build', ROOT / 'docs' / 'build.py')
docs = importlib.util.module_from_spec(_spec)  # docs/build.py, the builder `make docs` runs
_spec.loader.exec_module(docs)

OPENED = ['12_api.ipynb', 'studies/quickstart.ipynb']
TAB_STATE = """
const tabs = [...document.querySelectorAll('.lm-TabBar-tab')]
  .filter(t => t.innerText.trim().endsWith('.ipynb'));
const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
return {tabs: tabs.map(t => [t.innerText.trim(), t.classList.contains('jp-mod-dirty')]),
        kernel: status ? status.getAttribute('data-status') : null};
"""


@pytest.mark.parametrize(
    'name', sorted(p.relative_to(ROOT / 'nbs').as_posix() for p in ROOT.glob('nbs/**/*.ipynb'))
)
def test_notebook_holds_the_kernels_language_info(name):
    meta = json.loads((ROOT / 'nbs' / name).read_text())['metadata']
    assert meta['kernelspec']['name'] == 'clipkit', f'{name} asks for the clipkit kernel'
    info = meta.get('language_info', {})
    assert {'name', 'version', 'codemirror_mode', 'pygments_lexer'} <= set(info), (
        f"{name}: the kernel's language_info"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_notebooks_open_unmodified_in_jupyterlab(tmp_path):
    for name in OPENED:
        nb = json.loads((ROOT / 'nbs' / name).read_text())
        nb['metadata']['language_info']['version'] = platform.python_version()  # the Python of this kernel
        (tmp_path / Path(name).name).write_text(json.dumps(nb))
    port = _free_port()
    args = [sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--allow-root']
    args += ['--ServerApp.token=', '--ServerApp.password=', f'--ServerApp.root_dir={tmp_path}']
    args += [f'--LabApp.workspaces_dir={tmp_path / ".workspaces"}']
    lab = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'http://127.0.0.1:{port}'
    browser = None
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f'{url}/api/status')
                break
            except OSError:
                time.sleep(0.5)
        browser = docs._browser()
        for name in OPENED:
            browser.get(f'{url}/lab/tree/{Path(name).name}')
            deadline = time.time() + 90
            state = browser.execute_script(TAB_STATE)
            while time.time() < deadline and not (state['tabs'] and state['kernel'] == 'idle'):
                time.sleep(1)
                state = browser.execute_script(TAB_STATE)
            time.sleep(3)  # let the kernel's info reach the notebook model
            state = browser.execute_script(TAB_STATE)
            assert state['kernel'] == 'idle', f'{name}: the clipkit kernel started ({state})'
            dirty = [tab for tab, modified in state['tabs'] if modified]
            assert not dirty, f'{name}: JupyterLab marked {dirty} modified on opening'
    finally:
        if browser is not None:
            browser.quit()
        lab.terminate()
        lab.wait(timeout=30)
