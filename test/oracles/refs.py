"""Shared set-up for the Python reference networks in tests (never used at run time).

PyPI's torchvision 0.28 is a CUDA build; its compiled ops do not load beside the CPU torch wheel, and
`import torchvision` then fails registering fake kernels for nms/qnms. Defining those two op schemas first
lets it import; its models and transforms need none of the compiled ops.
"""
import torch

_defined = False


def import_torchvision():
    global _defined
    if not _defined:
        try:
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            globals()["_lib"] = lib  # the schemas live as long as the library object
        except RuntimeError:
            pass  # already defined (torchvision's own ops loaded)
        _defined = True
    import torchvision

    return torchvision
