"""Seconds per training step of the paper's two training stages, restated in PyTorch at full size, on a CUDA GPU:
the fMRI autoencoder (sbj_1's 8 ROIs, 32 tokens each, 1024 x 24 encoder, 512 x 8 decoder, MLP ratio 1) and the
MaskGIT transformer (24 post-LN layers, 768-d, 16 heads, MLP 3072, 256 tokens + the CLIP token), batch 8, one
forward, backward and AdamW step each, fp32 with TF32 off and on. A yardstick for what a GPU worker faces, not
this project's backend (tfjs-node-gpu): `python3 bench/reference/gpu_steps.py` prints JSON."""
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

dev = 'cuda'
ROIS = [1004, 801, 476, 588, 431, 249, 157, 760]  # GOD sbj_1 roi_patch
T, B = 32, 8


def blocks(d, heads, ff, depth, post_ln):
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation='gelu', batch_first=True,
                                       norm_first=not post_ln)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class Autoencoder(nn.Module):  # spec 2.1's shapes (lib/models/fmri-autoencoder.ts), timm-style pre-LN blocks
    def __init__(s, d=1024, dd=512, latent=1024):
        super().__init__()
        s.conv = nn.ModuleList(nn.Conv1d(1, T, 3, padding=1) for _ in ROIS)
        s.embed = nn.ModuleList(nn.Linear(n, d) for n in ROIS)
        n = len(ROIS) * T + 1
        s.cls, s.pos = nn.Parameter(torch.zeros(1, 1, d)), nn.Parameter(torch.zeros(1, n, d))
        s.encoder, s.norm, s.pred = blocks(d, 16, d, 24, False), nn.LayerNorm(d), nn.Linear(d, latent)
        s.decoder_embed, s.mask = nn.Linear(latent, dd), nn.Parameter(torch.zeros(1, 1, dd))
        s.dpos = nn.Parameter(torch.zeros(1, n, dd))
        s.decoder, s.dnorm = blocks(dd, 16, dd, 8, False), nn.LayerNorm(dd)
        s.out = nn.ModuleList(nn.Linear(dd, n) for n in ROIS)
        s.back = nn.Conv1d(T, 1, 3, padding=1)

    def forward(s, x):
        parts = torch.split(x, ROIS, 1)
        # ROI i: Conv1d(1 -> T) [B, T, n_i], Linear(n_i -> D) [B, T, D]; concatenated [B, R*T, D]
        tok = torch.cat([e(c(p[:, None])) for p, c, e in zip(parts, s.conv, s.embed)], 1)
        h = s.norm(s.encoder(torch.cat([s.cls.expand(len(x), -1, -1), tok], 1) + s.pos))
        z = s.pred(h[:, 0])
        q = torch.cat([s.decoder_embed(z)[:, None], s.mask.expand(len(x), len(ROIS) * T, -1)], 1) + s.dpos
        g = s.dnorm(s.decoder(q))[:, 1:].split(T, 1)
        return torch.cat([s.back(o(r)).squeeze(1) for r, o in zip(g, s.out)], 1)


class MaskGit(nn.Module):
    def __init__(s, d=768, codes=1024, slots=1000, length=256, clip=1024):
        super().__init__()
        s.tok, s.pos = nn.Embedding(codes + slots + 1, d), nn.Parameter(torch.zeros(1, length + 1, d))
        s.decoder_embed, s.ln = nn.Linear(clip, d), nn.LayerNorm(d)
        s.blocks = blocks(d, 16, 3072, 24, True)
        s.head, s.bias = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d)), nn.Parameter(torch.zeros(codes))
        s.codes = codes

    def forward(s, ids, feats):
        h = s.ln(torch.cat([s.decoder_embed(feats)[:, None], s.tok(ids)], 1) + s.pos)
        h = s.head(s.blocks(h)[:, 1:])
        return h @ s.tok.weight[: s.codes].T + s.bias


def timed(model, loss, steps=20, warmup=5):
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize(); t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True); loss().backward(); opt.step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main():
    torch.manual_seed(0)
    out = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'batch': B}
    ae, mg = Autoencoder().to(dev), MaskGit().to(dev)
    x = torch.randn(B, sum(ROIS), device=dev)
    ids = torch.randint(0, 1024, (B, 256), device=dev)
    masked = torch.rand(B, 256, device=dev) < 0.5
    feats = F.normalize(torch.randn(B, 1024, device=dev), dim=-1)
    cases = {
        'fmri-ae': (ae, lambda: F.mse_loss(ae(F.dropout(x, 0.25)), x)),
        'maskgit': (mg, lambda: F.cross_entropy(mg(ids.masked_fill(masked, 2024), feats)[masked], ids[masked],
                                                label_smoothing=0.1)),
    }
    for name, (model, loss) in cases.items():
        row = {'parameters': sum(p.numel() for p in model.parameters())}
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            row['tf32' if tf32 else 'fp32'] = timed(model, loss)
        out[name] = row
    json.dump(out, sys.stdout, indent=2); print()


if __name__ == '__main__':
    main()
