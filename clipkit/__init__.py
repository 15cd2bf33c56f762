__version__ = "0.1.0"

# The common entry points (nbs/12_api.ipynb writes clipkit.api) load on first use: `import clipkit` then
# `clipkit.create(...)` works as before, while `import clipkit.losses` loads only what the losses need.
import importlib as _importlib
import importlib.util as _importlib_util


def __getattr__(name):
    if name.startswith('_'):
        raise AttributeError(f"module 'clipkit' has no attribute {name!r}")
    # a submodule, as `from . import models` asks for while clipkit itself is still loading
    if _importlib_util.find_spec(f'clipkit.{name}') is not None:
        return _importlib.import_module(f'clipkit.{name}')
    api = _importlib.import_module('clipkit.api')
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'clipkit' has no attribute {name!r}")


def __dir__():
    return sorted({'__version__', *_importlib.import_module('clipkit.api').__all__})
