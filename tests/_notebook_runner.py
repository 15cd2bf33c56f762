"""Run module notebooks one after another in this one process, as nbdev-test runs each one, and write each
notebook's result (passed, seconds, the error text) to a JSON file. One process imports torch, open_clip and
clipkit once for all notebooks, instead of once per notebook.

Run: python tests/_notebook_runner.py RESULTS.json NOTEBOOK [NOTEBOOK ...]"""

import contextlib, io, json, sys, time
from pathlib import Path
from nbdev.test import test_nb

if __name__ == '__main__':
    out, notebooks = Path(sys.argv[1]), sys.argv[2:]
    results = {}
    for nb in notebooks:
        errors = io.StringIO()
        start = time.time()
        with contextlib.redirect_stderr(errors):
            sys.__stderr__ = errors  # test_nb writes its traceback to sys.__stderr__
            passed, _ = test_nb(nb, skip_flags=['notest', 'slow'], showerr=True)
            sys.__stderr__ = sys.stderr
        results[Path(nb).stem] = {
            'passed': passed,
            'seconds': time.time() - start,
            'errors': errors.getvalue(),
        }
        out.write_text(json.dumps(results, indent=1))
