"""Independent references for `npm run bench`: numpy matmul and a PyTorch CPU transformer training step.

Runs as a child of bench/main.ts and answers one JSON request per stdin line with one JSON line, so the
harness can alternate reference and TensorFlow.js measurements in the same run:
  {"op": "setup", "id": ..., "case": {...}}  -> {"ok": true, "threads": N}
  {"op": "time", "id": ..., "reps": R}       -> {"seconds": [R per-call wall times]}
  {"op": "drop", "id": ...}                  -> {"ok": true}
  {"op": "info"}                             -> library versions and thread pools
The transformer mirrors lib/models/transformer.ts: pre-LN blocks (one qkv Linear, softmax attention,
GELU MLP), a final LayerNorm, MSE loss, clip_grad_norm_, torch.optim.AdamW.
"""

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d, heads, hidden, eps):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Encoder(nn.Module):
    def __init__(self, depth, d, heads, mlp_ratio, eps):
        super().__init__()
        hidden = round(d * mlp_ratio)
        self.blocks = nn.ModuleList(Block(d, heads, hidden, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def setup_matmul(case):
    rng = np.random.default_rng(0)
    n = case["n"]
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return lambda: a @ b


def setup_transformer(case):
    torch.manual_seed(0)
    model = Encoder(case["depth"], case["width"], case["heads"], case["mlpRatio"], case["eps"])
    opt = torch.optim.AdamW(model.parameters(), lr=case["lr"], betas=tuple(case["betas"]),
                            eps=1e-8, weight_decay=case["weightDecay"])
    shape = (case["batch"], case["tokens"], case["width"])
    x, target = torch.randn(shape), torch.randn(shape)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), case["maxGradNorm"])
        opt.step()

    return step


def setup_tiny_ops(case):
    x = torch.ones(4, 4)

    def run():
        y = x
        for _ in range(case["ops"]):
            y = y + x
        return y

    return run


SETUPS = {"matmul": setup_matmul, "transformer": setup_transformer, "tiny-ops": setup_tiny_ops}


def info():
    from threadpoolctl import threadpool_info

    pools = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")} for p in threadpool_info()]
    return {"numpy": np.__version__, "torch": torch.__version__, "torchThreads": torch.get_num_threads(),
            "threadpools": pools}


def main():
    torch.set_grad_enabled(True)
    fns = {}
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "setup":
            case = req["case"]
            fns[req["id"]] = SETUPS[case["kind"]](case)
            reply = {"ok": True, "threads": torch.get_num_threads()}
        elif op == "time":
            fn, seconds = fns[req["id"]], []
            for _ in range(req["reps"]):
                t0 = time.perf_counter()
                fn()
                seconds.append(time.perf_counter() - t0)
            reply = {"seconds": seconds}
        elif op == "drop":
            fns.pop(req["id"], None)
            reply = {"ok": True}
        elif op == "info":
            reply = info()
        else:
            reply = {"error": f"unknown op {op}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
