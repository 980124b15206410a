"""Reference for bench/vit.ts: open_clip's ViT-H-14 image tower (random weights) on PyTorch CPU.

argv: threads, batch, warm-up calls, timed calls. Prints one JSON line: {"seconds": [...], "torch": version}.
Times encode_image(normalize=True) on preprocessed [batch, 3, 224, 224] pixels, as bench/vit.ts times ours.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "test", "oracles"))
from refs import import_torchvision  # noqa: E402

import_torchvision()  # open_clip imports torchvision, whose PyPI build needs its op schemas defined first
import open_clip  # noqa: E402


def main():
    threads, batch, warmup, reps = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-H-14")
    model.transformer = None  # the text tower is not timed; free its memory
    model.eval()
    x = torch.randn(batch, 3, 224, 224)
    seconds = []
    with torch.inference_mode():
        for i in range(warmup + reps):
            t0 = time.perf_counter()
            model.encode_image(x, normalize=True)
            if i >= warmup:
                seconds.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": seconds, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
