"""Run module notebooks one after another in this one process, as nbdev-test runs each one, and write each
notebook's result (passed, seconds, torch's thread count after it, the error text) to a JSON file. One
process imports torch, open_clip and clipkit once for all notebooks, instead of once per notebook. Between
notebooks it restores torch's thread count and the environment: what one notebook sets never reaches the next
(a notebook that left torch on one thread once made every later notebook twice as slow).

Run: python tests/_notebook_runner.py RESULTS.json NOTEBOOK [NOTEBOOK ...]"""

import contextlib, io, json, os, sys, time
from pathlib import Path
import torch
from nbdev.test import test_nb

if __name__ == '__main__':
    out, notebooks = Path(sys.argv[1]), sys.argv[2:]
    threads, environment = torch.get_num_threads(), dict(os.environ)
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
            'threads_after': torch.get_num_threads(),
            'errors': errors.getvalue(),
        }
        out.write_text(json.dumps(results, indent=1))
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environment)
