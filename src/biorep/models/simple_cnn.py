"""Study B's simple CNN encoder and its mirrored decoder (Dmitrenko et al., MIDL 2022)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biorep.data.geometry import as_hw

#: Bytes of the widest activation maps (64 channels at full resolution) one CPU micro-batch may hold.
#: Measured on a 2-core Xeon (2 MiB L2 per core, AMX; bf16 and fp32, 1 and 2 threads, batch 320 of
#: 1 × 64 × 64): the encoder was fastest at 32 (bf16) / 16 (fp32) images per chunk, the decoder (two
#: such maps live) at 16 / 8 — 1.3-1.65× the whole batch at once (``benchmarks/step/RESULTS.md``).
#: Most of the gain is page faults: glibc's malloc maps every buffer over 32 MiB afresh (and unmaps
#: it on free), so each op on the whole batch's 168 MB maps faulted its pages in again — 414,000
#: minor faults and 0.75-1.3 s of system time per bf16 autoencoder step, against 93,000 and 0.14 s
#: in chunks of 32 (user time about equal). Keep chunks well under that threshold.
CPU_CHUNK_BYTES = 16 * 2**20


def _item_bytes(x: torch.Tensor) -> int:
    """Bytes per element the layers compute in: the autocast dtype when autocast is on, else ``x``'s."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        return torch.tensor([], dtype=torch.get_autocast_dtype(dev)).element_size()
    return x.element_size()


def cpu_micro_batches(fn: Any, x: torch.Tensor, wide: int, micro_batch: int | None) -> torch.Tensor:
    """``fn(x)`` computed ``micro_batch`` images at a time on the CPU, concatenated.

    Why by hand: these layers have no batch statistics, so splitting the batch is the same function,
    but on a CPU the whole batch's wide maps are buffers above glibc's 32 MiB mmap threshold, mapped
    and page-faulted in afresh for every op, forward and backward; a chunk's buffers are reused from
    the heap, and its layers (and, since autograd runs each chunk's graph in turn, its backward) run
    while the previous layer's output is still in cache. The element-wise ops (ReLU, pooling, the
    decoder's phase interleave), which dominate this small network's step, gain most. ``micro_batch=None`` sizes chunks so
    their ``wide`` elements per image (the widest live maps) stay within :data:`CPU_CHUNK_BYTES`;
    ``0`` turns it off.
    Other devices (a GPU wants the whole batch) run ``fn(x)`` as it is.
    """
    if x.device.type != "cpu" or micro_batch == 0 or x.shape[0] <= 1:
        return fn(x)
    if micro_batch is None:
        micro_batch = max(1, CPU_CHUNK_BYTES // (wide * _item_bytes(x)))
    if x.shape[0] <= micro_batch:
        return fn(x)
    return torch.cat([fn(chunk) for chunk in x.split(micro_batch)])


class SimpleCNN(nn.Module):
    """``Conv(C→64)-ReLU-MaxPool2 · Conv(64→32)-ReLU-MaxPool2 · Conv(32→16)-ReLU · Conv(16→8)`` → flatten.

    All convolutions are 3×3, stride 1, padding 1. The representation is the flattened 8×(H/4)×(W/4)
    map: 2048-d for 64×64 inputs. Module indices match the study's code (``encoder.0`` … ``encoder.8``),
    so its published weights load as they are. On the CPU the batch runs in cache-sized chunks
    (:func:`cpu_micro_batches`; ``micro_batch``: images per chunk, None = sized by the cache budget,
    0 = the whole batch at once; ``model.kwargs: {micro_batch: 16}`` sets it from a config).

    Example:
        >>> SimpleCNN(in_chans=1, img_size=64)(torch.rand(2, 1, 64, 64)).shape
        torch.Size([2, 2048])
    """

    def __init__(
        self, in_chans: int = 1, img_size: int | tuple[int, int] = 64, micro_batch: int | None = None
    ) -> None:
        super().__init__()
        if micro_batch is not None and micro_batch < 0:
            raise ValueError(f"micro_batch must be ≥ 0 (0 = the whole batch at once), got {micro_batch}")
        self.micro_batch = micro_batch
        h, w = as_hw(img_size)
        if h < 4 or w < 4:
            raise ValueError(f"SimpleCNN needs inputs of at least 4×4 pixels, got {h}×{w}")
        self.in_chans = in_chans
        self.img_size = (h, w)
        self.feature_shape = (8, h // 4, w // 4)
        self.num_features = 8 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 8, 3, padding=1),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 8×(H/4)×(W/4) feature map.

        ``MaxPool(ReLU(x)) == ReLU(MaxPool(x))`` (max is monotonic; values and gradients alike), so the
        pools run before their ReLUs: the ReLU and its backward touch a 4× smaller map. Same function
        as ``self.encoder(x)``, the study's order.
        """
        return cpu_micro_batches(self._features, x, 64 * x.shape[-2] * x.shape[-1], self.micro_batch)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        x = F.relu(e[2](e[0](x)), inplace=True)
        x = F.relu(e[5](e[3](x)), inplace=True)
        return e[8](F.relu(e[6](x), inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).flatten(1)

    def build_decoder(self, out_chans: int | None = None) -> SimpleDecoder:
        """The mirrored decoder for this encoder's input shape."""
        return SimpleDecoder(out_chans or self.in_chans, self.img_size, self.micro_batch)


def _conv_weight(weight_t: torch.Tensor) -> torch.Tensor:
    """A stride-1 ``ConvTranspose2d`` weight ``[Cin, Cout, k, k]`` as the equivalent ``conv2d`` weight."""
    return weight_t.transpose(0, 1).flip(2, 3)


def _two_taps(k: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3-tap kernel along ``dim`` seen through ×2 nearest upsampling: the 2-tap kernels of the even
    and the odd output phase (``[k0, k1 + k2]`` over input offsets −1, 0 and ``[k0 + k1, k2]`` over 0, +1)."""
    k0, k1, k2 = k.unbind(dim)
    return torch.stack([k0, k1 + k2], dim), torch.stack([k0 + k1, k2], dim)


class _InterleavePhases(torch.autograd.Function):
    """``[B, 4·C, H+1, W+1]`` phase maps (channel ``(2a + b)·C + c``) → ``[B, C, 2H, 2W]`` with
    ``y[2i+a, 2j+b] = phase_ab[i+a, j+b]``: four strided copies in NHWC memory, and four back in the
    backward (autograd's own slicing would zero-fill a full-size gradient per phase)."""

    @staticmethod
    def forward(ctx: object, out: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c4, h1, w1 = out.shape
        c, h, w = c4 // 4, h1 - 1, w1 - 1
        o = out.permute(0, 2, 3, 1).contiguous().view(b, h1, w1, 2, 2, c)
        y = torch.empty((b, c, 2 * h, 2 * w), dtype=out.dtype, device=out.device,
                        memory_format=torch.channels_last)
        y6 = y.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c)
        for ra in (0, 1):
            for cb in (0, 1):
                y6[:, :, ra, :, cb] = o[:, ra : ra + h, cb : cb + w, ra, cb]
        return y

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, h2, w2 = grad.shape
        h, w = h2 // 2, w2 // 2
        g = grad.permute(0, 2, 3, 1).contiguous().view(b, h, 2, w, 2, c)
        go = grad.new_empty((b, h + 1, w + 1, 2, 2, c))
        for ra in (0, 1):
            for cb in (0, 1):
                go[:, ra : ra + h, cb : cb + w, ra, cb] = g[:, :, ra, :, cb]
                go[:, h if ra == 0 else 0, :, ra, cb] = 0  # the row and column this phase never
                go[:, :, w if cb == 0 else 0, ra, cb] = 0  # contributes to get a zero gradient
        return go.view(b, h + 1, w + 1, 4 * c).permute(0, 3, 1, 2)


def upsample2_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(upsample_nearest(x, 2), weight, bias, padding=1)`` for a 3×3 ``weight`` — exactly, at
    the low resolution.

    Every output pixel of a 3×3 convolution over a ×2 nearest-upsampled map reads only a 2×2
    neighbourhood of the small map, with one of four summed kernels (one per output phase). So the
    four phases are one ``conv2d`` with ``4·Cout`` 2×2 kernels at the input resolution (padding 1,
    output ``(H+1)×(W+1)``), interleaved into the ``2H×2W`` result (output row ``2i`` is the even
    phase at ``i``, row ``2i+1`` the odd phase at ``i+1``): 0.44× the multiply-adds of the
    upsample-then-convolve form, and no 4× larger upsampled input. Zero padding of the big map is zero
    padding of the small one, so borders are exact too.
    """
    rows = _two_taps(weight, 2)  # even / odd output rows
    kernels = torch.cat([c for r in rows for c in _two_taps(r, 3)], 0)  # phases 00, 01, 10, 11
    big_bias = None if bias is None else bias.repeat(4)
    return _InterleavePhases.apply(F.conv2d(x, kernels, big_bias, padding=1))


class SimpleDecoder(nn.Module):
    """The study's decoder: ``ConvT(8→32)-ReLU-Up2 · ConvT(32→64)-ReLU-Up2 · ConvT(64→64)-ReLU ·
    ConvT(64→C)-Sigmoid`` (3×3, padding 1), from the 8×(H/4)×(W/4) code back to C×H×W in [0, 1].

    Accepts the flat ``[B, 8·(H/4)·(W/4)]`` representation or the ``[B, 8, H/4, W/4]`` map; sizes not
    divisible by 4 are interpolated to exactly H×W before the sigmoid.

    The modules (``decoder.0`` … ``decoder.8``, the study's ``ConvTranspose2d`` weights) are the
    study's; :meth:`forward` computes the same function faster: the stride-1 transposed convolutions
    as the equivalent ``conv2d`` (oneDNN's transposed-convolution backward is slow on CPUs, in bf16
    up to ×6), each ``Upsample(×2) → conv`` pair at the low resolution (:func:`upsample2_conv3x3`),
    and only the last one, to C channels, as a transposed convolution (faster there than a
    one-output-channel ``conv2d``). :meth:`reference_forward` runs the modules as written (tests compare
    the two). :meth:`forward_logits` stops before the sigmoid (for a fused, stable BCE).

    Example:
        >>> SimpleDecoder(out_chans=1, img_size=64)(torch.rand(2, 2048)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(
        self, out_chans: int = 1, img_size: int | tuple[int, int] = 64, micro_batch: int | None = None
    ) -> None:
        super().__init__()
        h, w = as_hw(img_size)
        self.micro_batch = micro_batch
        self.img_size = (h, w)
        self.code_shape = (8, h // 4, w // 4)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(8, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(64, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, out_chans, 3, padding=1),
        )

    def _code(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(z.shape[0], *self.code_shape) if z.ndim == 2 else z

    def _to_size(self, out: torch.Tensor) -> torch.Tensor:
        if tuple(out.shape[-2:]) != self.img_size:
            out = F.interpolate(out, size=self.img_size, mode="bilinear", align_corners=False)
        return out

    def forward_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction before the sigmoid, ``[B, C, H, W]`` (on the CPU in cache-sized chunks
        like the encoder's; two full-size maps are live here, so chunks are half as large)."""
        h, w = self.img_size
        return cpu_micro_batches(self._logits, self._code(z), 2 * 64 * h * w, self.micro_batch)

    def _logits(self, z: torch.Tensor) -> torch.Tensor:
        d = self.decoder
        c0, c1, c2, c3 = d[0], d[3], d[6], d[8]
        x = F.relu(F.conv2d(self._code(z), _conv_weight(c0.weight), c0.bias, padding=1))
        x = F.relu(upsample2_conv3x3(x, _conv_weight(c1.weight), c1.bias), inplace=True)
        x = F.relu(upsample2_conv3x3(x, _conv_weight(c2.weight), c2.bias), inplace=True)
        # to one channel: the transposed form (oneDNN's conv2d with one output channel is slower)
        return self._to_size(F.conv_transpose2d(x, c3.weight, c3.bias, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(z))

    def reference_forward(self, z: torch.Tensor) -> torch.Tensor:
        """The study's decoder run module by module (slow; for checking :meth:`forward`)."""
        return torch.sigmoid(self._to_size(self.decoder(self._code(z))))
