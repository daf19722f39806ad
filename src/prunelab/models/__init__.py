"""Model builders by name.

>>> from prunelab.models import build_model
>>> model = build_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
"""

# The builder modules fill MODELS when imported.
from prunelab.models import cnn, imagenet_resnet, mlp, resnet, vgg  # noqa: F401
from prunelab.models.registry import MODELS, NO_DEFAULT, build_model, check_options, initialize, model_options, register

__all__ = ["MODELS", "NO_DEFAULT", "build_model", "check_options", "initialize", "model_options", "register"]
