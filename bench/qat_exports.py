"""Real QAT exports: small nets quantized by NVIDIA ModelOpt's PyTorch quantizer, exported to Q/DQ ONNX.

    python bench/qat_exports.py OUTDIR [--full] [--images DIR]

Runs in the peer environment (torch + nvidia-modelopt + onnx + onnxruntime), NOT in qdqtool's own venv.
The nets are written in plain torch.nn (no torchvision), seeded, in eval mode; ModelOpt calibrates them as a
user would, `mtq.quantize(model, mtq.INT8_DEFAULT_CFG, forward_loop)` over a few real photos, and the TorchScript
exporter writes opset 17. Writes OUTDIR/NAME.onnx for resnet_tiny, c2f_tiny, mbv2_tiny (the committed fixtures
in tests/data/qat/), and with --full also resnet18 and c2f_full (real widths; never committed).
Prints, per export, its node counts and the cosine of ONNX Runtime's output against the FP32 torch model.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections import Counter
from pathlib import Path

import modelopt.torch.quantization as mtq
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
CALIB_IMAGES = 8
COUNTED = ("QuantizeLinear", "DequantizeLinear", "Cast", "Identity", "Constant", "Add", "Concat")


# ---------------------------------------------------------------------------------------------------------------
# ResNet (torchvision layout: 7x7/2 stem + maxpool, basic blocks, 1x1 conv+BN downsample on stride-2 skips)

class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, widths, blocks, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, c_in = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(c_in, width, stride)] + [BasicBlock(width, width, 1) for _ in range(count - 1)]
            layers.append(nn.Sequential(*layer))
            c_in = width
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


# ---------------------------------------------------------------------------------------------------------------
# YOLOv8-style: Conv+BN+SiLU, C2f (chunk, bottlenecks with residual add, concat), SPPF, upsample+concat neck,
# per-level head whose box-like and class-like branches are concatenated and flattened with x.view(batch, no, -1)

class ConvBnSiLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool):
        super().__init__()
        self.cv1 = ConvBnSiLU(c, c, 3)
        self.cv2 = ConvBnSiLU(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = ConvBnSiLU(c_in, 2 * self.c, 1)
        self.cv2 = ConvBnSiLU((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        c_ = c_in // 2
        self.cv1 = ConvBnSiLU(c_in, c_, 1)
        self.cv2 = ConvBnSiLU(c_ * 4, c_out, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class DetectHead(nn.Module):
    """YOLOv8's Detect without DFL: box branch (4 channels) and class branch per level; box * stride, class sigmoid."""

    def __init__(self, channels, classes: int, strides, c_box: int, c_cls: int):
        super().__init__()
        self.no = 4 + classes
        self.strides = strides
        self.cv2 = nn.ModuleList(
            nn.Sequential(ConvBnSiLU(c, c_box, 3), ConvBnSiLU(c_box, c_box, 3), nn.Conv2d(c_box, 4, 1))
            for c in channels)
        self.cv3 = nn.ModuleList(
            nn.Sequential(ConvBnSiLU(c, c_cls, 3), ConvBnSiLU(c_cls, c_cls, 3), nn.Conv2d(c_cls, classes, 1))
            for c in channels)

    def forward(self, xs):
        levels = []
        for i, x in enumerate(xs):
            y = torch.cat((self.cv2[i](x) * self.strides[i], self.cv3[i](x)), 1)
            levels.append(y.view(x.shape[0], self.no, -1))
        y = torch.cat(levels, 2)
        box, cls = y.split((4, self.no - 4), 1)
        return torch.cat((box, cls.sigmoid()), 1)


class YoloC2f(nn.Module):
    """YOLOv8's backbone and PAN neck (P3/P4/P5), widths w[0..4], C2f depths n[0..3] in the backbone."""

    def __init__(self, w, n, classes: int, c_box: int, c_cls: int):
        super().__init__()
        self.stem = nn.Sequential(ConvBnSiLU(3, w[0], 3, 2), ConvBnSiLU(w[0], w[1], 3, 2), C2f(w[1], w[1], n[0], True))
        self.p3 = nn.Sequential(ConvBnSiLU(w[1], w[2], 3, 2), C2f(w[2], w[2], n[1], True))
        self.p4 = nn.Sequential(ConvBnSiLU(w[2], w[3], 3, 2), C2f(w[3], w[3], n[2], True))
        self.p5 = nn.Sequential(ConvBnSiLU(w[3], w[4], 3, 2), C2f(w[4], w[4], n[3], True), SPPF(w[4], w[4]))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(w[4] + w[3], w[3], 1, False)
        self.top3 = C2f(w[3] + w[2], w[2], 1, False)
        self.down3 = ConvBnSiLU(w[2], w[2], 3, 2)
        self.out4 = C2f(w[2] + w[3], w[3], 1, False)
        self.down4 = ConvBnSiLU(w[3], w[3], 3, 2)
        self.out5 = C2f(w[3] + w[4], w[4], 1, False)
        self.detect = DetectHead((w[2], w[3], w[4]), classes, (8.0, 16.0, 32.0), c_box, c_cls)

    def forward(self, x):
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        t4 = self.top4(torch.cat((self.up(p5), p4), 1))
        o3 = self.top3(torch.cat((self.up(t4), p3), 1))
        o4 = self.out4(torch.cat((self.down3(o3), t4), 1))
        o5 = self.out5(torch.cat((self.down4(o4), p5), 1))
        return self.detect([o3, o4, o5])


# ---------------------------------------------------------------------------------------------------------------
# MobileNetV2: 1x1 expand + ReLU6, depthwise 3x3 + ReLU6, 1x1 project, residual add when stride 1 and same width

def conv_bn_relu6(c_in: int, c_out: int, k: int, s: int, groups: int = 1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers = [conv_bn_relu6(c_in, hidden, 1, 1)] if expand != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, stem: int, settings, last: int, classes: int):
        super().__init__()
        layers, c_in = [conv_bn_relu6(3, stem, 3, 2)], stem
        for expand, c_out, repeats, stride in settings:
            for i in range(repeats):
                layers.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expand))
                c_in = c_out
        layers.append(conv_bn_relu6(c_in, last, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------------------------------------------------------

def _init(model: nn.Module) -> nn.Module:
    """Random but non-trivial BN statistics, so the folded/unfolded BN matters in the export."""
    gen = torch.Generator().manual_seed(SEED + 1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=gen)
            m.bias.data = 0.2 * torch.randn(c, generator=gen)
            m.running_mean.data = 0.1 * torch.randn(c, generator=gen)
            m.running_var.data = 0.5 + torch.rand(c, generator=gen)
    return model.eval()


# name -> (constructor, input size); each constructor runs under torch.manual_seed(SEED)
SMALL = {
    "resnet_tiny": (lambda: ResNet((8, 16, 32), (2, 2, 1), classes=10), 64),
    "c2f_tiny": (lambda: YoloC2f((8, 8, 16, 24, 32), (1, 1, 1, 1), classes=4, c_box=8, c_cls=8), 64),
    "mbv2_tiny": (lambda: MobileNetV2(8, [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2)], last=32, classes=10), 64),
}
FULL = {
    "resnet18": (lambda: ResNet((64, 128, 256, 512), (2, 2, 2, 2), classes=1000), 224),
    "c2f_full": (lambda: YoloC2f((16, 32, 64, 128, 256), (1, 2, 2, 1), classes=80, c_box=64, c_cls=80), 320),
}


def load_images(folder: Path, size: int, count: int) -> list[torch.Tensor]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
    if not files:
        raise SystemExit(f"no images in {folder}: run `make assets` in the qdqtool repo first")
    out = []
    for path in files:
        img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        out.append(torch.from_numpy(np.ascontiguousarray(arr))[None])
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def export(name: str, build, size: int, images: Path, outdir: Path) -> str:
    torch.manual_seed(SEED)
    model = _init(build())
    reference = copy.deepcopy(model)
    batches = load_images(images, size, CALIB_IMAGES)

    def forward_loop(m):
        for x in batches:
            m(x)

    with torch.no_grad():
        model = mtq.quantize(model, mtq.INT8_DEFAULT_CFG, forward_loop)
    model.eval()
    path = outdir / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (batches[0],), str(path), opset_version=17, dynamo=False,
                          input_names=["images"], output_names=["output"],
                          dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    counts = Counter(n.op_type for n in proto.graph.node)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probe = batches[-1]
    got = sess.run(None, {"images": probe.numpy()})[0]
    with torch.no_grad():
        want = reference(probe).numpy()
        fake = model(probe).numpy()
    kb = path.stat().st_size / 1024
    parts = ", ".join(f"{op} {counts.get(op, 0)}" for op in COUNTED)
    return (f"{name}: {kb:.0f} KB, opset {proto.opset_import[0].version}, {len(proto.graph.node)} nodes ({parts}); "
            f"cosine ORT vs FP32 torch {cosine(got, want):.6f}, ORT vs fake-quant torch {cosine(got, fake):.6f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--full", action="store_true", help="also the real-width ResNet-18 and C2f net")
    parser.add_argument("--images", type=Path, default=ROOT / "calib_data" / "images")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    nets = {**SMALL, **(FULL if args.full else {})}
    for name, (build, size) in nets.items():
        print(export(name, build, size, args.images, args.outdir), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
