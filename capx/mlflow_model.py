"""The old import path of :mod:`capx.tracking.logged_model`, kept for models logged before the move.

MLflow pickles a pyfunc model's class by its module path, so a model logged by an older capx
unpickles ``capx.mlflow_model.CaptionModel``; this module makes that name resolve.
"""

from capx.tracking.logged_model import *  # noqa: F401,F403
from capx.tracking.logged_model import CaptionModel  # noqa: F401
