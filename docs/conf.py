"Sphinx settings of clipkit's documentation site; docs/build.py stages the sources and runs Sphinx with them."

project = 'clipkit'
author = 'clipkit developers'
extensions = ['myst_nb']
root_doc = 'index'
html_theme = 'furo'
html_title = 'clipkit'
html_static_path = ['_static']  # build.py copies the local MathJax here
exclude_patterns = ['_build', '**.ipynb_checkpoints']
nb_execution_mode = 'off'  # the notebooks are committed executed: their stored outputs are the pages' outputs
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'misc.highlighting_failure', 'myst.xref_missing']
# Formulas are typeset in the browser by the MathJax 2 that jupyter-server-mathjax ships, copied into _static
# by clipkit.studies.local_mathjax with its font setting: nothing is fetched from a CDN, so the site reads the
# same offline.
mathjax_path = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/clipkit'
# myst-nb marks each notebook's section `tex2jax_ignore` and its formulas `math`: MathJax 2 typesets the
# `math` elements inside it and nothing else (no stray dollar signs in code output). myst's own setting is for
# MathJax 3.
myst_update_mathjax = False
mathjax2_config = {
    'tex2jax': {
        'inlineMath': [['\\(', '\\)']],
        'displayMath': [['\\[', '\\]']],
        'ignoreClass': 'tex2jax_ignore|mathjax_ignore',
        'processClass': 'tex2jax_process|mathjax_process|math|output_area',
        'processEscapes': True,
    }
}
