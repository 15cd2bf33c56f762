__version__ = "0.1.0"

from .api import *  # noqa: F403  (the common entry points, written by nbs/12_api.ipynb)
