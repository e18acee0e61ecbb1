"""Init from another biorep run: run folder or checkpoint, backbone keys matched, method heads skipped,
heads reused for the same class list and reinitialised for another one; ``biorep train --init-from``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biorep.errors import ConfigError
from biorep.methods import METHODS
from biorep.methods.base import DataInfo
from biorep.models import ModelConfig, build_backbone, init_heads_from, load_weights, resolve_weights
from biorep.rundir import RunPaths, write_json, write_yaml
from biorep.views import ViewsConfig

CLASSES = [str(i) for i in range(1, 23)] + ["X", "Y"]


def _method(classes: list[str], weights: str | None = None, seed: int = 0):
    torch.manual_seed(seed)
    cls = METHODS.get("supervised")
    return cls(
        cls.Params(),
        model=ModelConfig(backbone="simple_cnn", weights=weights),
        views=ViewsConfig(),
        data=DataInfo(in_chans=1, size=32, classes=classes),
    )


def _fake_run(root: Path, classes: list[str]) -> tuple[Path, torch.nn.Module]:
    """A run directory as biorep writes it: config.yaml, data.json, checkpoints/best.ckpt (Lightning)."""
    method = _method(classes, seed=1)
    paths = RunPaths(root)
    write_yaml(paths.config, {"model": {"backbone": "simple_cnn"}, "method": {"name": "supervised"}})
    write_json(paths.data, {"dataset": "synthetic-karyotype", "channels": 1, "size": 32, "classes": classes})
    paths.checkpoints.mkdir(parents=True)
    torch.save({"epoch": 3, "state_dict": method.state_dict()}, paths.best)
    return root, method


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_dir_resolves_to_best_then_last(tmp_path: Path) -> None:
    run, _ = _fake_run(tmp_path / "pki3", CLASSES)
    assert resolve_weights(run) == RunPaths(run).best
    RunPaths(run).best.rename(RunPaths(run).last)
    assert resolve_weights(run) == RunPaths(run).last
    with pytest.raises(ConfigError, match="not a finished biorep run"):
        resolve_weights(tmp_path)


@pytest.mark.parametrize("which", ["run_dir", "checkpoint"])
def test_backbone_keys_matched_and_heads_skipped(tmp_path: Path, which: str) -> None:
    run, src = _fake_run(tmp_path / "pki3", CLASSES)
    spec = run if which == "run_dir" else RunPaths(run).best
    net = build_backbone(ModelConfig(backbone="simple_cnn"), 1, 32)
    report = load_weights(net, spec)
    assert _equal(net.state_dict(), src.backbone.state_dict())
    assert sorted(report.loaded) == sorted(net.state_dict())
    assert report.missing == []
    assert report.unexpected == ["classifier.0.weight", "classifier.0.bias"]  # the method's head
    assert report.source_classes == CLASSES


def test_head_reinitialised_for_another_class_set(tmp_path: Path) -> None:
    run, src = _fake_run(tmp_path / "pki3", CLASSES)
    lab = ["A1", "A2", "B"]  # a lab's own naming and count
    dst = _method(lab, weights=str(run), seed=2)
    fresh = {k: v.clone() for k, v in dst.state_dict().items() if not k.startswith("backbone.")}
    report = init_heads_from(dst, run, lab)
    assert report.loaded == []
    assert sorted(report.missing) == sorted(fresh)
    # the backbone came from the run, the head kept its fresh init with the new number of classes
    assert _equal(dst.backbone.state_dict(), src.backbone.state_dict())
    assert _equal({k: v for k, v in dst.state_dict().items() if k in fresh}, fresh)
    assert dst.classifier[-1].out_features == 3
    assert dst.classify(torch.rand(2, 1, 32, 32)).shape == (2, 3)


def test_head_reinitialised_when_the_same_names_come_in_another_order(tmp_path: Path) -> None:
    run, src = _fake_run(tmp_path / "pki3", CLASSES)
    shuffled = CLASSES[1:] + CLASSES[:1]
    dst = _method(shuffled, weights=str(run), seed=2)
    assert init_heads_from(dst, run, shuffled).loaded == []
    assert not torch.equal(dst.classifier[-1].weight, src.classifier[-1].weight)


def test_head_reused_for_the_same_class_list(tmp_path: Path) -> None:
    run, src = _fake_run(tmp_path / "pki3", CLASSES)
    dst = _method(CLASSES, weights=str(run), seed=2)
    report = init_heads_from(dst, RunPaths(run).best, CLASSES)
    assert sorted(report.loaded) == ["classifier.0.bias", "classifier.0.weight"]
    assert _equal(dst.state_dict(), src.state_dict())


def test_wrong_backbone_names_the_runs_backbone(tmp_path: Path) -> None:
    run, _ = _fake_run(tmp_path / "pki3", CLASSES)
    with pytest.raises(ConfigError, match="trained with model.backbone 'simple_cnn'"):
        build_backbone(ModelConfig(backbone="resnet18", weights=str(run)), 1, 32)


def test_cli_init_from_sets_model_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``biorep train --init-from RUN`` (0 epochs: the initialised weights are the checkpoint)."""
    from biorep.cli import main
    from biorep.rundir import read_yaml

    monkeypatch.setenv("BIOREP_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    smoke = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"
    src_run, dst_run = tmp_path / "src", tmp_path / "dst"
    common = ["--set", "train.epochs=0", "--set", "train.precision=32"]
    for args in (
        ["train", str(smoke), "--out", str(src_run), *common],
        ["train", str(smoke), "--out", str(dst_run), "--init-from", str(src_run), *common,
         "--set", "train.seed=7"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
            raise SystemExit(0)
        assert int(exc.value.code or 0) == 0
    assert read_yaml(RunPaths(dst_run).config)["model"]["weights"] == str(src_run.resolve())
    a = torch.load(resolve_weights(src_run), map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(resolve_weights(dst_run), map_location="cpu", weights_only=True)["state_dict"]
    backbone = [k for k in a if k.startswith("backbone.")]
    assert backbone and all(torch.equal(a[k], b[k]) for k in backbone)


def test_method_built_from_a_run_reuses_its_heads_for_the_same_classes(tmp_path: Path) -> None:
    """``model.weights: RUN`` loads the backbone at build time and the heads too for the same classes."""
    run, source = _fake_run(tmp_path / "pki3", CLASSES)
    same = _method(CLASSES, weights=str(run), seed=5)
    assert _equal(same.state_dict(), source.state_dict())
    other = _method(CLASSES[:-1], weights=str(run), seed=5)
    src_backbone = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    own_backbone = {k: v for k, v in other.state_dict().items() if k.startswith("backbone.")}
    assert _equal(own_backbone, src_backbone)
    assert other.classifier[-1].weight.shape[0] == len(CLASSES) - 1


def test_fine_tuned_run_loads_after_its_source_is_deleted(tmp_path: Path) -> None:
    import shutil

    from biorep.training import load_config, load_run, train

    smoke = Path(__file__).resolve().parents[2] / "configs" / "synthetic-smoke.yaml"
    source = train(load_config(smoke), tmp_path / "source")
    tuned = train(load_config(smoke, [f"model.weights={source}"]), tmp_path / "tuned")
    shutil.rmtree(source)
    run = load_run(tuned)
    assert run.model.classify(torch.zeros(2, 1, 32, 32, dtype=torch.uint8)).shape[0] == 2
