"""The analysis of a photo: coverage, the unusual-photo score and its calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from skyclear.restore.analysis import COVERAGE_LEVEL, Calibration, analyse, calibrate
from skyclear.restore.config import preset
from skyclear.restore.inference import Restorer
from skyclear.restore.nn import Aux, F2DNet
from skyclear.restore.runtime import resolve_device
from skyclear.restore.transport.methods import method_named
from torch import Tensor


@dataclass
class _Seen:
    """A stand-in restorer whose ``inspect`` gives set maps and features."""

    maps: Tensor
    features: dict[float, Tensor]

    def inspect(self, image: Tensor) -> tuple[Aux, Tensor]:
        ones = torch.ones(1, 4)
        features = self.features[float(image.flatten()[0])]
        return Aux(self.maps, ones, ones, True), features[None]


def _image(key: float) -> Tensor:
    return torch.full((1, 3, 8, 8), key)


def test_coverage_is_the_share_of_the_frame_a_map_reaches_its_level() -> None:
    maps = torch.zeros(1, 4, 10, 10)
    maps[0, 0, :3] = COVERAGE_LEVEL  # 30 % at the level exactly
    maps[0, 2, :, :5] = 0.9  # 50 %
    maps[0, 3] = COVERAGE_LEVEL - 1e-3  # nowhere
    seen = _Seen(maps, {0.5: torch.zeros(3)})
    analysis = analyse(seen, "p.png", _image(0.5))  # type: ignore[arg-type]
    torch.testing.assert_close(analysis.coverage, torch.tensor([0.3, 0.0, 0.5, 0.0]))
    assert analysis.score is None and analysis.unusual is None


def test_the_score_is_the_distance_to_the_nearest_training_images() -> None:
    calibration = Calibration("abc", [0.0, 0.0], [1.0, 2.0], [[float(k), 0.0] for k in range(8)],
                              0.95, 1.0, 8, 0, {})  # fmt: skip
    # (2.5, 2 scales up): z = (2.5, 1); its 5 nearest are x = 1..4 at 0 and one of 0 or 5.
    z = np.array([2.5, 1.0])
    nearest = sorted(np.hypot(z[0] - np.arange(8), z[1]))[:5]
    score = float(calibration.score(torch.tensor([[2.5, 2.0]]))[0])
    assert score == pytest.approx(np.mean(nearest) / np.sqrt(2))
    assert float(calibration.score(torch.tensor([[40.0, 0.0]]))[0]) > 10 * score
    with pytest.raises(ValueError, match="another network"):
        calibration.score(torch.zeros(1, 5))


def test_calibration_standardises_on_training_images_and_thresholds_held_out_ones() -> None:
    train = {float(k): torch.tensor([k, 2.0 * k, 5.0]) for k in range(1, 8)}
    held = {10.0 + k: torch.tensor([1.0 + k / 4, 2.0, 5.0]) for k in range(20)}
    seen = _Seen(torch.zeros(1, 4, 2, 2), {**train, **held})
    images = [_image(k) for k in train]
    calibration = calibrate(seen, images, [_image(k) for k in held], "abc", 0.9)  # type: ignore[arg-type]
    std = float(torch.arange(1.0, 8.0).std())
    np.testing.assert_allclose(calibration.mean, [4.0, 8.0, 5.0])
    np.testing.assert_allclose(calibration.scale[:2], [std, 2 * std], rtol=1e-6)
    assert calibration.scale[2] > 0  # a constant feature keeps a scale
    reference = np.array(calibration.reference)
    np.testing.assert_allclose(reference[:, 0], (np.arange(1, 8) - 4) / std, atol=1e-4)
    by_hand = []
    for k in range(20):
        z = np.array([(1.0 + k / 4 - 4) / std, (2.0 - 8) / (2 * std), 0.0])
        distances = np.sort(np.linalg.norm(reference - z, axis=1))[:5] / np.sqrt(3)
        by_hand.append(distances.mean())
    assert calibration.threshold == pytest.approx(float(np.quantile(by_hand, 0.9)), rel=1e-4)
    assert calibration.held_out_images == 20 and calibration.train_images == 7
    flagged = analyse(seen, "p", _image(10.0 + int(np.argmax(by_hand))), calibration)  # type: ignore[arg-type]
    assert flagged.unusual is True and flagged.score == pytest.approx(max(by_hand), rel=1e-4)


def test_a_calibration_file_round_trips_and_others_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    calibration = Calibration("abc", [1.0], [2.0], [[0.5]], 0.95, 1.5, 10, 5, {"min": 0.1})
    calibration.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == calibration
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a calibration file"):
        Calibration.load(tmp_path / "other.json")


def test_inspect_is_the_first_evaluation_of_restoration() -> None:
    torch.manual_seed(0)
    config = preset("tiny")
    restorer = Restorer(F2DNet(config.model).eval(), method_named("f2d"), config,
                        resolve_device("cpu"))  # fmt: skip
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    aux, features = restorer.inspect(x)
    _, restored_aux = restorer(x)
    torch.testing.assert_close(aux.maps, restored_aux.maps)
    torch.testing.assert_close(aux.weights, restored_aux.weights)
    alone = restorer.inspect(x[1:])[1]
    torch.testing.assert_close(features[1:], alone, atol=1e-5, rtol=1e-5)
    assert features.shape[0] == 2 and features.shape[1] > 100
