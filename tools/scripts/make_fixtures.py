#!/usr/bin/python3
"""Export the small fixture models used by sarai-rt's tests.

    /usr/bin/python3 tools/scripts/make_fixtures.py [--out-dir tests/fixtures] [--check-only]

Needs Debian's python3-torch (1.13), python3-onnx and python3-numpy, i.e. the
system interpreter /usr/bin/python3. Deterministic: every weight comes from a
fixed seed, so rerunning rewrites byte-identical weights (the exporter itself
may still differ between torch versions).

Models (see tests/fixtures/README.md):
  whisper_tiny_encoder.onnx  Whisper-style audio encoder, input mel [1, 80, frames]
  small_cnn.onnx             PaddleOCR-style small CNN, input image [1, 3, H, W]
"""

import argparse
import collections
import math
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17

# Ops sarai-rt implements (or will): the fixtures must stay inside this set.
ALLOWED_OPS = {
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Pow",
    "Sqrt", "Erf", "Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Clip",
    "Softmax", "LayerNormalization", "BatchNormalization", "ReduceMean",
    "GlobalAveragePool", "AveragePool", "MaxPool", "Resize", "Transpose",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Slice", "Split",
    "Gather", "Shape", "Cast", "Constant", "ConstantOfShape", "Identity", "Where",
    "Equal", "Expand", "Range",
}

MAX_BYTES = 3 * 1024 * 1024


# --------------------------------------------------------------------------
# Whisper-style encoder
# --------------------------------------------------------------------------

def sinusoids(length, channels, max_timescale=10000.0):
    """Whisper's sinusoidal position table, [length, channels]."""
    assert channels % 2 == 0
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2, dtype=torch.float64))
    scaled_time = torch.arange(length, dtype=torch.float64)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1).float()


class MultiHeadSelfAttention(nn.Module):
    """Self-attention written out with MatMul / Softmax / Transpose / Reshape."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model, bias=False)  # Whisper's key has no bias
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x):
        b, t = x.shape[0], x.shape[1]  # traced as Shape/Gather -> dynamic Reshape targets
        q = self.query(x).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # [b,h,t,dh]
        k = self.key(x).reshape(b, t, self.n_heads, self.head_dim).permute(0, 2, 3, 1)  # [b,h,dh,t]
        v = self.value(x).reshape(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # [b,h,t,dh]
        scores = torch.matmul(q, k) / math.sqrt(self.head_dim)
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.out(ctx)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.attn_ln = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, n_heads)
        self.mlp_ln = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        x = x + self.attn(self.attn_ln(x))
        x = x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))  # exact (erf) GELU
        return x


class WhisperTinyEncoder(nn.Module):
    def __init__(self, n_mels=80, d_model=128, n_heads=4, d_ff=512, n_layers=2, max_positions=1500):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(max_positions, d_model))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.ln_post = nn.LayerNorm(d_model)

    def forward(self, mel):
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x))
        x = x.transpose(1, 2)  # [1, T/2, d]
        x = x + self.positional_embedding[: x.shape[1]]  # Shape -> Gather -> Slice
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


# --------------------------------------------------------------------------
# PaddleOCR-style small CNN
# --------------------------------------------------------------------------

class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)  # -> GlobalAveragePool
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.expand = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        s = self.pool(x)
        s = F.relu(self.reduce(s))
        s = F.hardsigmoid(self.expand(s))
        return x * s


class SmallCNN(nn.Module):
    """Shapes for an input [1, 3, H, W] with H, W multiples of 8.

    stem    Conv3x3/2 + BN + HardSwish            -> [16, H/2, W/2]   (s1)
    dw      depthwise Conv3x3 + BN + HardSwish    -> [16, H/2, W/2]
    pw      Conv1x1 + BN + HardSwish              -> [32, H/2, W/2]
    se      squeeze-excite                        -> [32, H/2, W/2]
    MaxPool2x2                                    -> [32, H/4, W/4]   (a)
    AveragePool2x2 + Conv1x1 + Relu               -> [32, H/8, W/8]   (b)
    nearest x2 (b) ; Concat(a, up(b))             -> [64, H/4, W/4]
    BatchNorm (not after a conv: stays a BatchNormalization node)
    Conv1x1 + HardSwish ; bilinear x2             -> [16, H/2, W/2]
    Concat(s1, .) ; Conv1x1 + Sigmoid             -> [1,  H/2, W/2]
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.pw = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.se = SqueezeExcite(32)
        self.maxpool = nn.MaxPool2d(2, 2)
        # count_include_pad=False: with the default True, torch 1.13 adds a no-op Pad node.
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False)
        self.low = nn.Conv2d(32, 32, 1)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.neck_bn = nn.BatchNorm2d(64)
        self.neck = nn.Conv2d(64, 16, 1)
        self.up_bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.Conv2d(32, 1, 1)

    def forward(self, image):
        s1 = self.stem(image)
        x = self.se(self.pw(self.dw(s1)))
        a = self.maxpool(x)
        b = F.relu(self.low(self.avgpool(a)))
        x = torch.cat([a, self.up_nearest(b)], dim=1)
        x = F.hardswish(self.neck(self.neck_bn(x)))
        x = self.up_bilinear(x)
        x = torch.cat([s1, x], dim=1)
        return torch.sigmoid(self.head(x))


# --------------------------------------------------------------------------
# Weight init, export, checks
# --------------------------------------------------------------------------

def init_weights(model, seed, gain=1.0):
    """Non-default, deterministic weights scaled so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g) * std + mean

    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(normal(m.weight.shape, gain / math.sqrt(fan_in)))
                if m.bias is not None:
                    m.bias.copy_(normal(m.bias.shape, 0.1))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(normal(m.weight.shape, 0.1, 1.0))
                m.bias.copy_(normal(m.bias.shape, 0.05))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(uniform(m.weight.shape, 0.5, 1.5))
                m.bias.copy_(normal(m.bias.shape, 0.1))
                m.running_mean.copy_(normal(m.running_mean.shape, 0.1))
                m.running_var.copy_(uniform(m.running_var.shape, 0.5, 2.0))
        for name, m in model.named_modules():
            # Residual branches: keep the residual stream from growing layer by layer.
            if isinstance(m, ResidualAttentionBlock):
                m.attn.out.weight.mul_(0.5)
                m.fc2.weight.mul_(0.5)
            # Spread the final logits so the sigmoid output is not flat.
            if isinstance(m, SmallCNN):
                m.head.weight.mul_(3.0)


def op_histogram(model):
    return collections.Counter(n.op_type for n in model.graph.node)


def describe(path):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    hist = op_histogram(m)
    bad = sorted(set(hist) - ALLOWED_OPS)
    size = os.path.getsize(path)
    print(f"{os.path.basename(path)}: {size / 1024:.0f} KiB, opset {m.opset_import[0].version}, "
          f"{len(m.graph.node)} nodes, {len(m.graph.initializer)} initializers")
    for v in m.graph.input:
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        print(f"  input  {v.name} {onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)} {dims}")
    for v in m.graph.output:
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        print(f"  output {v.name} {onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)} {dims}")
    print("  ops: " + ", ".join(f"{k} {v}" for k, v in sorted(hist.items())))
    ok = True
    if bad:
        print(f"  ERROR: ops outside the allowed set: {bad}")
        ok = False
    if size >= MAX_BYTES:
        print(f"  ERROR: file is {size} bytes, limit {MAX_BYTES}")
        ok = False
    return ok


def export(model, args, path, input_names, output_names, dynamic_axes, fix_output_dims=None, **kw):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model, args, path,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
            **kw,
        )
    # Drop the exporter's doc strings (they hold source paths) and fix the
    # producer fields so the files do not depend on where the script ran.
    m = onnx.load(path)
    for n in m.graph.node:
        n.doc_string = ""
    m.producer_name = "sarai-rt tools/scripts/make_fixtures.py (torch " + torch.__version__.split("+")[0] + ")"
    m.producer_version = ""
    for v, dims in (fix_output_dims or {}).items():
        out = next(o for o in m.graph.output if o.name == v)
        for d, want in zip(out.type.tensor_type.shape.dim, dims):
            if isinstance(want, int):
                d.dim_value = want
            else:
                d.dim_param = want
    onnx.save(m, path)


def sanity_run(model, example, name):
    """Run the torch model on a second, differently sized input, print stats."""
    with torch.no_grad():
        y = model(example)
    print(f"  torch {name}{list(example.shape)} -> {list(y.shape)}, mean {y.mean():.4f}, std {y.std():.4f}, "
          f"max|y| {y.abs().max():.4f}")
    if not torch.isfinite(y).all():
        raise SystemExit(f"{name}: non-finite output")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tools/scripts/ -> the repository
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.join(repo, "tests", "fixtures"))
    ap.add_argument("--check-only", action="store_true", help="only check and describe existing files")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    torch.manual_seed(0)
    torch.set_num_threads(1)

    enc_path = os.path.join(args.out_dir, "whisper_tiny_encoder.onnx")
    cnn_path = os.path.join(args.out_dir, "small_cnn.onnx")

    if not args.check_only:
        enc = WhisperTinyEncoder()
        init_weights(enc, seed=1234)
        enc.eval()
        mel = torch.randn(1, 80, 200, generator=torch.Generator().manual_seed(1))
        export(enc, (mel,), enc_path, ["mel"], ["encoder_out"],
               {"mel": {2: "frames"}, "encoder_out": {1: "out_frames"}},
               # the exporter names the static 128 after a LayerNormalization output
               fix_output_dims={"encoder_out": [1, "out_frames", 128]})
        sanity_run(enc, torch.randn(1, 80, 151, generator=torch.Generator().manual_seed(2)), "encoder")

        cnn = SmallCNN()
        init_weights(cnn, seed=4321, gain=1.5)
        cnn.eval()
        image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
        export(cnn, (image,), cnn_path, ["image"], ["prob"],
               {"image": {2: "H", 3: "W"}, "prob": {2: "H_out", 3: "W_out"}})
        sanity_run(cnn, torch.rand(1, 3, 48, 160, generator=torch.Generator().manual_seed(4)), "cnn")

    ok = describe(enc_path) & describe(cnn_path)
    hist = op_histogram(onnx.load(cnn_path))
    if hist.get("BatchNormalization", 0) == 0:
        print("ERROR: small_cnn.onnx lost all BatchNormalization nodes")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
