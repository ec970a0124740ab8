"""Model registry: ``build_model(cfg)``, ``count_params(cfg)``, ``list_models()``.

``cfg`` is the plain ``model:`` section of a trial config, e.g.
``count_params({"family": "resnet", "layers": 3, "blocks": 2, "channels": 85})``.
Importing this package does not import torch; only ``build_model`` does.
"""

from configcheck import ConfigError
from model import densenet as _densenet  # noqa: F401  (each import registers a family)
from model import googlenet as _googlenet  # noqa: F401
from model import mobilenet as _mobilenet  # noqa: F401
from model import mobilenetv2 as _mobilenetv2  # noqa: F401
from model import resnet as _resnet  # noqa: F401
from model.registry import build_model, count_macs, count_params, get_family, list_models, resolve_config

__all__ = ["ConfigError", "build_model", "count_macs", "count_params", "get_family", "list_models",
           "resolve_config"]
