"""Neural-network building blocks (PyTorch's names and semantics): Module, Parameter, layers,
losses, init and utils; `functional` holds the stateless forms."""
from . import functional, init, utils
from .layers import (GELU, BatchNorm1d, Conv2d, Dropout, Flatten, Identity, LeakyReLU, Linear, LogSoftmax,
                     MaxPool2d, ReLU, Sigmoid, Softmax, Softplus, Tanh)
from .layers_more import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv1d, Embedding, LayerNorm
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential, StateDictError

__all__ = ["functional", "init", "parallel", "utils",
           "Module", "Parameter", "Sequential", "ModuleList", "StateDictError",
           "Linear", "Conv2d", "MaxPool2d", "Flatten", "Dropout", "BatchNorm1d", "ReLU", "Sigmoid", "Tanh",
           "LeakyReLU", "GELU", "Softplus", "Softmax", "LogSoftmax", "Identity", "MSELoss", "CrossEntropyLoss",
           "BCELoss", "BCEWithLogitsLoss", "ModuleDict", "NLLLoss", "L1Loss",
           "Conv1d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d", "LayerNorm", "Embedding"]


def __getattr__(name: str):
    """`nn.parallel` (DistributedDataParallel and the MPI layer under it) is imported on first use: most
    programs never train on several processes, and `import deltaprop` stays quick."""
    if name == "parallel":
        import importlib

        return importlib.import_module(".parallel", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
