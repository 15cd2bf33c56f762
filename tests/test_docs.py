"The documentation site builds offline from the executed notebooks and reads correctly in a real browser."

import importlib.util
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('clipkit_docs_build', ROOT / 'docs' / 'build.py')
docs = importlib.util.module_from_spec(_spec)  # docs/build.py, the builder `make docs` runs
_spec.loader.exec_module(docs)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')
    docs.build(out)
    return out


def test_every_notebook_and_module_has_a_page(site):
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        assert (site / f'{nb.stem}.html').is_file(), f'{nb.name} has a page'
    for nb in sorted((ROOT / 'nbs' / 'studies').glob('*.ipynb')):
        assert (site / 'studies' / f'{nb.stem}.html').is_file(), f'the study {nb.stem} has a page'
    for module in docs.public_modules():
        assert (site / 'api' / f'{module}.html').is_file(), f'{module} has an API page'


def test_api_pages_show_signatures_and_parameter_notes(site):
    page = (site / 'api' / 'clipkit.features.html').read_text()
    assert 'image_features' in page, 'each public function is on its module page'
    assert 'images per forward pass' in page, 'with the note of each parameter'
    assert '[source]' not in page, "and no quarto-only markup of show_doc's"


def test_nothing_is_fetched_from_the_internet(site):
    for page in [site / 'index.html', site / '03_losses.html']:
        html = page.read_text()
        assert 'src="https://' not in html and 'href="https://cdn' not in html, (
            f'{page.name} loads nothing remote'
        )
        assert '_static/mathjax/MathJax.js' in html or page.name == 'index.html', 'MathJax is the local copy'


def test_pages_load_typeset_and_link_in_headless_chromium(site, tmp_path):
    states = docs.check_site(site, tmp_path / 'screenshots')  # raises, listing every fault it finds
    assert states['module']['maths'] > 20, 'the module page checked has formulas (all typeset, or it raised)'
    assert states['index']['images'] >= 1, 'the index shows a figure of the world, loaded'
    assert states['study']['images'] >= 1, "the study page shows the study's figures, loaded"
    assert all(state['links'] > 50 for state in states.values()), 'every page carries the navigation'
    for page in docs.CHECKED_PAGES:
        assert (tmp_path / 'screenshots' / f'{page}.png').stat().st_size > 10_000, f'a screenshot of {page}'
