"""Load a local state dict, a checkpoint or another biorep run into a backbone (and its heads).

Handles what ``load_state_dict`` alone does not: checkpoint containers (Lightning ``state_dict``,
``model``, ``model_state_dict``…), key prefixes (``module.``, ``model.``, ``backbone.``, …, on either
side), a first convolution saved for another number of input channels, and ViT position embeddings
saved for another image size (via timm's ``resample_abs_pos_embed``).

Transfer from another biorep run (``model.weights: runs/pki3`` or ``runs/pki3/checkpoints/best.ckpt``,
``biorep train --init-from RUN``): a run directory resolves to its ``best.ckpt`` (else ``last.ckpt``);
from a biorep checkpoint only the method's ``backbone.`` tensors go into the backbone and every other
tensor (classifier, projection and embedding heads) is reported as skipped. :func:`init_heads_from`
then decides about the heads: they are reused only when the source run's class list is the target's
(same names, same order) and their shapes fit; for another class set they keep their fresh
initialisation.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from biorep.errors import ConfigError, RunDirError
from biorep.rundir import RunPaths, read_data, read_yaml

log = logging.getLogger(__name__)

PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "encoder.", "student.", "net.")
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys loaded, left at their init, ignored, and adapted."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    source: str = ""
    source_classes: list[str] | None = None


def normalize_key(key: str) -> str:
    """Strip the known wrapper prefixes from the start of ``key`` (repeatedly)."""
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if key.startswith(p) and len(key) > len(p):
                key = key[len(p) :]
                changed = True
    return key


#: The prefix under which every biorep method keeps its backbone (``BaseMethod.backbone``).
METHOD_BACKBONE_PREFIX = "backbone."


def resolve_weights(spec: str | Path) -> Path:
    """The weights file that ``spec`` names: a file as it is; a biorep run directory → its
    ``checkpoints/best.ckpt`` (else ``last.ckpt``).

    Example:
        >>> resolve_weights("runs/pki3")                                  # doctest: +SKIP
        PosixPath('runs/pki3/checkpoints/best.ckpt')
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        paths = RunPaths(path)
        for ckpt in (paths.best, paths.last):
            if ckpt.is_file():
                return ckpt
        raise ConfigError(
            f"model.weights: {path} is a folder but not a finished biorep run (no {paths.best} or "
            f"{paths.last}); give a run directory or a weights file"
        )
    if not path.is_file():
        raise ConfigError(f"model.weights: {path} does not exist or is not a file")
    return path


def run_dir_of(path: str | Path) -> Path | None:
    """The biorep run directory that ``path`` (a run folder or a checkpoint inside one) belongs to."""
    p = Path(path).expanduser()
    for cand in (p, p.parent.parent if p.is_file() else p):
        paths = RunPaths(cand)
        if paths.data.is_file() and paths.config.is_file():
            return cand
    return None


def source_classes(path: str | Path) -> list[str] | None:
    """The class list (in the order of the classifier's outputs) of the run ``path`` belongs to."""
    run = run_dir_of(path)
    if run is None:
        return None
    try:
        return list(read_data(run).classes) or None
    except RunDirError:
        return None


def source_backbone(path: str | Path) -> str | None:
    """``model.backbone`` of the run ``path`` belongs to (for error messages), or None."""
    run = run_dir_of(path)
    if run is None:
        return None
    try:
        cfg = read_yaml(RunPaths(run).config) or {}
    except RunDirError:
        return None
    model = cfg.get("model") if isinstance(cfg, dict) else None
    return str(model.get("backbone")) if isinstance(model, dict) and model.get("backbone") else None


def split_method_state(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(backbone, rest)`` of a biorep method's state dict: the ``backbone.`` tensors with that
    prefix stripped, and every other tensor (heads, EMA copies, decoders) under its own name.

    A state dict with no ``backbone.`` key is returned whole as the backbone part.
    """
    if not any(k.startswith(METHOD_BACKBONE_PREFIX) for k in state):
        return dict(state), {}
    n = len(METHOD_BACKBONE_PREFIX)
    backbone = {k[n:]: v for k, v in state.items() if k.startswith(METHOD_BACKBONE_PREFIX)}
    rest = {k: v for k, v in state.items() if not k.startswith(METHOD_BACKBONE_PREFIX)}
    return backbone, rest


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (``torch.save`` file, Lightning checkpoint or safetensors;
    a biorep run directory reads its best checkpoint)."""
    path = resolve_weights(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is the user's file
        text = str(err).strip()  # torch's weights-only refusal is a paragraph advising weights_only=False
        why = ("not a PyTorch file, or one holding Python objects besides tensors, which are not "
               "unpickled, for safety") if isinstance(err, pickle.UnpicklingError) \
            else (text.splitlines()[0] if text else type(err).__name__)
        raise ConfigError(f"model.weights: cannot read {path} as a PyTorch checkpoint or state dict ({why})") from None
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(
            f"model.weights: {path} holds no state dict (expected a mapping of tensors, or one under "
            f"any of {', '.join(_CONTAINER_KEYS)})"
        )
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def adapt_conv_channels(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a conv weight ``[O, C_src, kh, kw]`` to ``in_chans`` input channels.

    The filters are averaged over the source channels, tiled to ``in_chans`` and scaled by
    ``C_src / in_chans``: an image whose channels are all equal gets exactly the response the source
    conv gave to it (for one channel this is the sum over source channels, as timm does). The
    source channels' meaning (e.g. RGB) does not carry over to other stains anyway, so no per-channel
    filter is kept. Generalises timm's ``adapt_input_conv``, which only starts from 3 channels.
    """
    if weight.shape[1] == in_chans:
        return weight
    return weight.sum(1, keepdim=True).repeat(1, in_chans, 1, 1) / in_chans


def _is_in_chans_mismatch(value: torch.Tensor, want: torch.Tensor) -> bool:
    """Same conv but another number of input channels."""
    return (
        value.ndim == 4
        and want.ndim == 4
        and value.shape[0] == want.shape[0]
        and value.shape[2:] == want.shape[2:]
    )


def _owner_of(module: nn.Module, key: str) -> nn.Module:
    """The sub-module that holds parameter ``key``."""
    path = key.rsplit(".", 1)[0] if "." in key else ""
    return module.get_submodule(path) if path else module


def _resample_pos_embed(module: nn.Module, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    from timm.layers import resample_abs_pos_embed

    n_prefix = 0 if getattr(module, "no_embed_class", False) else int(getattr(module, "num_prefix_tokens", 1))
    grid = dst.shape[1] - n_prefix
    new_size = getattr(getattr(module, "patch_embed", None), "grid_size", None)  # (rows, cols) of this canvas
    if new_size is None or int(new_size[0]) * int(new_size[1]) != grid:
        side = int(round(grid**0.5))
        if side * side != grid:
            return None
        new_size = (side, side)
    old_grid = src.shape[1] - n_prefix
    old_side = int(round(old_grid**0.5))
    if src.ndim != 3 or old_side * old_side != old_grid:
        return None  # the source's grid is not square: its rows × cols are unknown here
    return resample_abs_pos_embed(src, new_size=[int(new_size[0]), int(new_size[1])],
                                  old_size=[old_side, old_side], num_prefix_tokens=n_prefix)


def load_weights(module: nn.Module, path: str | Path, *, strict: bool = True) -> LoadReport:
    """Load the weights at ``path`` into ``module`` and report what happened.

    Source keys match target keys after :func:`normalize_key` on both sides. Source keys with no
    target (e.g. a classifier or projection head) are ignored with a warning. Missing target keys
    raise a :class:`ConfigError` when ``strict`` (they would silently stay random).

    Example:
        >>> import tempfile, os
        >>> from biorep.models.simple_cnn import SimpleCNN
        >>> net = SimpleCNN(1, 64)
        >>> f = os.path.join(tempfile.mkdtemp(), "w.pt")
        >>> torch.save({"state_dict": {"backbone." + k: v for k, v in net.state_dict().items()}}, f)
        >>> len(load_weights(SimpleCNN(1, 64), f).loaded)
        8
    """
    ckpt = resolve_weights(path)
    src, skipped = split_method_state(read_state_dict(ckpt))
    target = module.state_dict()
    by_norm: dict[str, str] = {}
    for k in target:
        by_norm.setdefault(normalize_key(k), k)
    first_conv = next((k for k, v in target.items() if v.ndim == 4), None)  # the stem / patch embed
    report = LoadReport(source=str(ckpt), source_classes=source_classes(ckpt))
    report.unexpected.extend(skipped)
    new_state: dict[str, torch.Tensor] = {}
    shape_errors: list[str] = []
    for key, value in src.items():
        tkey = key if key in target else by_norm.get(normalize_key(key))
        if tkey is None:
            report.unexpected.append(key)
            continue
        want = target[tkey]
        if value.shape != want.shape:
            if tkey == first_conv and _is_in_chans_mismatch(value, want):
                report.adapted.append(f"{tkey}: {value.shape[1]}→{want.shape[1]} input channels")
                value = adapt_conv_channels(value, want.shape[1])
            elif tkey.endswith("pos_embed") and value.ndim == want.ndim == 3:
                resampled = _resample_pos_embed(_owner_of(module, tkey), value, want)
                if resampled is None or resampled.shape != want.shape:
                    shape_errors.append(f"{key}: {tuple(value.shape)} vs model {tuple(want.shape)}")
                    continue
                value = resampled
                report.adapted.append(f"{tkey}: position embedding resampled to {tuple(want.shape)}")
            else:
                shape_errors.append(f"{key}: {tuple(value.shape)} vs model {tuple(want.shape)}")
                continue
        new_state[tkey] = value.to(want.dtype)
        report.loaded.append(tkey)
    trained_with = source_backbone(ckpt)
    hint = f"; the run was trained with model.backbone {trained_with!r}" if trained_with else ""
    if shape_errors:
        raise ConfigError(
            f"model.weights: {path}: {len(shape_errors)} tensors do not fit this backbone "
            f"(wrong model.backbone or model.kwargs?{hint}): " + "; ".join(shape_errors[:8])
        )
    if not new_state:
        raise ConfigError(
            f"model.weights: {path}: no key matches this backbone{hint} (first file keys: "
            f"{', '.join(list(src)[:5])}; first model keys: {', '.join(list(target)[:5])})"
        )
    report.missing = [k for k in target if k not in new_state]
    if report.missing and strict:
        raise ConfigError(
            f"model.weights: {path} lacks {len(report.missing)} of the backbone's tensors "
            f"(e.g. {', '.join(report.missing[:8])}); is it a checkpoint of this backbone?{hint}"
        )
    module.load_state_dict(new_state, strict=False)
    if report.unexpected:
        log.warning(
            "model.weights: skipped %d tensors of %s that the backbone lacks (heads of the source "
            "method; e.g. %s)",
            len(report.unexpected),
            path,
            ", ".join(report.unexpected[:5]),
        )
    for msg in report.adapted:
        log.info("model.weights: adapted %s", msg)
    return report


def init_heads_from(
    method: nn.Module,
    path: str | Path,
    classes: list[str] | None,
    *,
    backbone_attr: str = "backbone",
) -> LoadReport:
    """Reuse the heads of the run at ``path`` in ``method`` when the class set is the same.

    ``method`` is a whole biorep method (backbone + heads). Its non-backbone tensors are loaded
    from the checkpoint where name and shape match — but only when the source run's class list
    equals ``classes`` (same names, same order): a classifier's rows mean the source's classes, so
    for another class set (other names, another order or count) every head keeps its fresh
    initialisation and is reported in ``missing``. The backbone itself is left alone (it was loaded
    by :func:`load_weights` when the backbone was built).

    Example:
        >>> report = init_heads_from(method, "runs/pki3", ["1", "2", "X"])  # doctest: +SKIP
        >>> report.loaded   # [] when the source run had other classes
    """
    ckpt = resolve_weights(path)
    src_classes = source_classes(ckpt)
    _, rest = split_method_state(read_state_dict(ckpt))
    prefix = backbone_attr + "."
    own = {k: v for k, v in method.state_dict().items() if not k.startswith(prefix)}
    report = LoadReport(source=str(ckpt), source_classes=src_classes)
    same_classes = src_classes is not None and classes is not None and list(src_classes) == list(classes)
    if not same_classes:
        report.missing = list(own)
        report.unexpected = list(rest)
        why = "unknown" if src_classes is None else f"{len(src_classes)} classes"
        log.info(
            "model.weights: heads reinitialised (source run's classes: %s; this run: %d classes)",
            why,
            len(classes or []),
        )
        return report
    new_state: dict[str, torch.Tensor] = {}
    for key, want in own.items():
        value = rest.get(key)
        if value is not None and value.shape == want.shape:
            new_state[key] = value.to(want.dtype)
            report.loaded.append(key)
        else:
            report.missing.append(key)
    report.unexpected = [k for k in rest if k not in new_state]
    method.load_state_dict(new_state, strict=False)
    log.info("model.weights: reused %d head tensors of %s (same %d classes)", len(report.loaded),
             ckpt, len(classes or []))
    return report
