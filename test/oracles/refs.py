"""Shared set-up for the Python reference networks in tests and benchmarks (never used at run time).

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


def lpips_alex_heads():
    """The lpips wheel's own v0.1 alex.pth (a legacy, pre-zip torch.save), the file users import."""
    import lpips

    return lpips.__file__.replace("__init__.py", "weights/v0.1/alex.pth")


def random_fid_inception():
    """torch-fidelity's InceptionV3 with random weights (He-normal convs, perturbed BatchNorms): its constructor
    loads the published weights, so the loaders are stubbed while it is built (nothing can be downloaded)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    load, fetch = fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, **k: None
    fe.load_state_dict_from_url = lambda *a, **k: {}
    try:
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url = load, fetch
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(mod.weight)
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return net
