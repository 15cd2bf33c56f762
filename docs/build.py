"""Build clipkit's documentation site offline, then check it in a real headless browser.

    .venv/bin/python docs/build.py [--out _docs] [--no-check]

The notebooks (the landing page `index`, the module notebooks and the studies) become pages with their
committed outputs, through myst-nb; each module gets an API page with the signature and parameter notes of
every public name, as nbdev's show_doc writes them; Sphinx (furo theme) writes static HTML to `_docs/`.
Formulas are typeset by a local MathJax. The check opens the index, one module page and one study page in
Debian's chromium (through selenium and chromedriver): each must load, typeset its math, load its images and
link only to pages that exist. Screenshots go to `_docs/screenshots/`.
"""

import argparse
import functools
import http.server
import importlib
import json
import pkgutil
import re
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from clipkit.studies import MATHJAX_CONFIG, local_mathjax

ROOT = Path(__file__).resolve().parents[1]
CHECKED_PAGES = {'index': 'index.html', 'module': '03_losses.html', 'study': 'studies/quickstart.html'}


def _hidden(cell) -> bool:
    "A cell nbdev keeps out of documentation (`#| hide`)."
    return any(line.strip() in ('#| hide', '#|hide') for line in cell['source'].splitlines()[:3])


def stage_notebook(source: Path, dest: Path, extra_markdown: str = ''):
    """Copy a notebook for the site: hidden cells and nbdev's directive lines left out, an optional markdown
    cell appended."""
    nb = json.loads(source.read_text())
    for cell in nb['cells']:
        cell['source'] = ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']
    nb['cells'] = [c for c in nb['cells'] if not _hidden(c)]
    for cell in nb['cells']:
        if cell['cell_type'] == 'code':  # nbdev's `#| export` lines are for the exporter, not the reader
            cell['source'] = '\n'.join(
                line for line in cell['source'].splitlines() if not line.startswith('#|')
            )
    nb['cells'] = [c for c in nb['cells'] if c['source'].strip() or c.get('outputs')]
    if extra_markdown:
        nb['cells'].append(
            {'cell_type': 'markdown', 'id': 'site-contents', 'metadata': {}, 'source': extra_markdown}
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb))


def public_modules() -> list:
    "The clipkit modules with an `__all__`, in import order of their names."
    import clipkit

    names = [m.name for m in pkgutil.walk_packages(clipkit.__path__, 'clipkit.') if '._' not in m.name]
    return [n for n in sorted(names) if getattr(importlib.import_module(n), '__all__', None)]


def api_page(module_name: str) -> str:
    "The API page of one module: its docstring, then show_doc's signature and parameter notes of each name."
    from nbdev.showdoc import show_doc

    module = importlib.import_module(module_name)
    parts = [f'# {module_name}\n', (module.__doc__ or '').strip() + '\n']
    for name in module.__all__:
        obj = getattr(module, name)
        if not callable(obj):
            parts.append(f'### {name}\n\n`{name} = {obj!r}`'[:600] + '\n')
            continue
        markdown = show_doc(obj, name=name)._repr_markdown_()
        markdown = re.sub(r'^\[source\]\(.*\)\{.*\}\s*$', '', markdown, flags=re.M)  # quarto-only link
        markdown = re.sub(
            r'^\s*---\s*\n', '', markdown
        )  # show_doc's opening rule (a heading's underline here)
        parts.append(markdown.strip() + '\n')
    return '\n\n'.join(parts)


def stage(src: Path) -> Path:
    "Write the site's sources into `src`: conf.py, the notebooks, the API pages and the tree of contents."
    conf = (ROOT / 'docs' / 'conf.py').read_text()
    assert MATHJAX_CONFIG in conf, 'docs/conf.py loads the local MathJax with its configuration'
    (src / 'conf.py').write_text(conf)
    local_mathjax(src / '_static')
    modules = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if p.stem != 'index')
    studies = sorted((ROOT / 'nbs' / 'studies').glob('*.ipynb'))
    for nb in modules:
        stage_notebook(nb, src / nb.name)
    for nb in studies:
        stage_notebook(nb, src / 'studies' / nb.name)
    api = []
    for name in public_modules():
        (src / 'api').mkdir(exist_ok=True)
        (src / 'api' / f'{name}.md').write_text(api_page(name))
        api.append(f'api/{name}')

    def toctree(caption, entries):
        return '\n'.join(['```{toctree}', ':hidden:', f':caption: {caption}', '', *entries, '```', ''])

    contents = '\n'.join(
        [
            toctree('Notebooks', [p.stem for p in modules]),
            toctree('Studies', [f'studies/{p.stem}' for p in studies]),
            toctree('API reference', api),
        ]
    )
    stage_notebook(ROOT / 'nbs' / 'index.ipynb', src / 'index.ipynb', contents)
    return src


def build(out: Path) -> Path:
    "Stage the sources and run Sphinx into `out`; return the path of the index page."
    from sphinx.cmd.build import build_main

    out = Path(out)
    with tempfile.TemporaryDirectory() as d:
        src = stage(Path(d))
        status = build_main(['-b', 'html', '-q', '-j', '1', str(src), str(out)])
    if status != 0:
        raise RuntimeError(f'sphinx-build failed with status {status}')
    return out / 'index.html'


def _browser():
    "Debian's chromium, headless, driven by its chromedriver through selenium."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver')
    if not chromium or not driver:
        raise RuntimeError(
            'no chromium/chromedriver: `make docs` installs them (apt-get install chromium-driver)'
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--window-size=1280,1000',
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))


PAGE_STATE = r"""
const maths = document.querySelectorAll('.math.notranslate');
const typeset = document.querySelectorAll('script[type^="math/tex"]');
const errors = document.querySelectorAll('.MathJax_Error, .MathJax_Preview:not(:empty)');
const images = [...document.querySelectorAll('img')];
const text = document.body.innerText;
return {
  title: document.title,
  maths: maths.length,
  typeset: typeset.length - errors.length,
  raw_math: (text.match(/\$\$|\\\(|\\\[/g) || []).length,
  images: images.length,
  broken_images: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  mathjax_idle: !window.MathJax || !MathJax.Hub || MathJax.Hub.queue.pending === 0,
};
"""


def check_site(site: Path, screenshots: Path | None = None) -> dict:
    """Open the checked pages of a built site in headless chromium, served over local HTTP. Each page
    must load, typeset every formula (no raw `$$`, `\\(` or `\\[` left), load every image, and link only to
    pages that exist. Returns {page: its state}; raises AssertionError listing every fault."""
    import time

    site = Path(site)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.handle_error = lambda *args: None  # the browser may drop a connection it no longer needs
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f'http://127.0.0.1:{server.server_address[1]}/'
    faults, states, checked_links = [], {}, {}
    browser = _browser()
    try:
        for name, path in CHECKED_PAGES.items():
            browser.get(origin + path)
            deadline = time.time() + 90  # MathJax typesets in the page; a loaded machine is slow
            state = browser.execute_script(PAGE_STATE)
            while time.time() < deadline and not (
                state['mathjax_idle'] and state['typeset'] >= state['maths']
            ):
                time.sleep(0.25)
                state = browser.execute_script(PAGE_STATE)
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(screenshots / f'{name}.png'))
            if not state['title'] or '404' in state['title']:
                faults.append(f'{path}: did not load (title {state["title"]!r})')
            if state['maths'] and state['typeset'] < state['maths']:
                faults.append(f'{path}: {state["maths"]} formulas, {state["typeset"]} typeset by MathJax')
            if state['raw_math']:
                faults.append(f'{path}: {state["raw_math"]} raw math delimiters left in the text')
            if state['broken_images']:
                faults.append(f'{path}: images that did not load: {state["broken_images"]}')
            for link in state['links']:
                target = urllib.parse.urldefrag(link).url
                if not target.startswith(origin):
                    continue
                if target not in checked_links:
                    try:
                        checked_links[target] = urllib.request.urlopen(target).status
                    except Exception as e:
                        checked_links[target] = f'{type(e).__name__}: {e}'
                if checked_links[target] != 200:
                    faults.append(f'{path}: link {target[len(origin) :]} -> {checked_links[target]}')
            states[name] = {k: v for k, v in state.items() if k != 'links'} | {'links': len(state['links'])}
    finally:
        browser.quit()
        server.shutdown()
    if faults:
        raise AssertionError('the site fails the browser check:\n' + '\n'.join(faults))
    return states


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT / '_docs'), help='the site folder (replaced)')
    ap.add_argument('--no-check', action='store_true', help='build only; skip the browser check')
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    index = build(out)
    print(f'docs: built {index}')
    if not args.no_check:
        for page, state in check_site(out, out / 'screenshots').items():
            print(
                f"docs: {page:6s} {state['maths']} formulas typeset, {state['images']} images loaded, "
                f"{state['links']} links resolve"
            )
        print(f"docs: screenshots in {out / 'screenshots'}")


if __name__ == '__main__':
    main()
