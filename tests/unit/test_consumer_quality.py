"""The consumer scores every vector with both variants and follows their live quality: on a
replayed recording its gauges agree with `volatility evaluate` on the same recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.unit.test_loops import drain, running
from volatility.bus.memory import MemoryBus
from volatility.features import FeatureVector
from volatility.features.spec import FEATURE_NAMES
from volatility.loops import run_consumer
from volatility.messages import decode_prediction, encode_features
from volatility.monitoring import ModelMonitor
from volatility.names import TOPIC_FEATURES, TOPIC_PREDICTIONS
from volatility.scoring.model import Model
from volatility.settings import DEFAULT_MODEL_DIR
from volatility.stages import ScoreStage
from volatility_training.dataset import build_dataset
from volatility_training.evaluate import evaluate_models


def _gauge(name: str, variant: str, product: str, role: str) -> float | None:
    labels = {"model_variant": variant, "product": product, "role": role}
    return REGISTRY.get_sample_value(f"volatility_live_{name}", labels)


def test_live_quality_of_both_variants_agrees_with_offline_evaluation(
    recordings: list[Path],
) -> None:
    data = [p for p in recordings if p.name.startswith("20260404T031918Z")]
    ds = build_dataset(data)
    order = sorted(range(len(ds)), key=lambda i: (ds.times[i], str(ds.products[i])))
    active, shadow = (Model.load(DEFAULT_MODEL_DIR, v) for v in ("baseline", "ml"))
    monitor = ModelMonitor(active.contract, shadow.contract, export_every=60.0, window=10**5)
    bus = MemoryBus()
    bus.subscribe(TOPIC_PREDICTIONS, "reader-" + TOPIC_PREDICTIONS)
    with running(
        run_consumer,
        bus,
        ScoreStage(active),
        poll_timeout=0.05,
        shadow=ScoreStage(shadow),
        monitor=monitor,
    ):
        bus.publish_many(
            TOPIC_FEATURES,
            [
                (
                    str(ds.products[i]),
                    encode_features(
                        FeatureVector(
                            str(ds.products[i]), float(ds.times[i]), tuple(ds.features[i])
                        )
                    ),
                )
                for i in order
            ],
        )
        got = drain(bus, TOPIC_PREDICTIONS, lambda g: len(g) >= len(ds))
    predictions = [decode_prediction(m.value) for m in got]
    x32 = ds.features[order].astype(np.float32)
    want_active, want_shadow = active.score(x32), shadow.score(x32)
    assert [p.score for p in predictions] == pytest.approx(want_active.tolist(), abs=1e-6)
    assert all(p.shadow is not None and p.shadow.variant == "ml" for p in predictions)
    shadows = [p.shadow.score for p in predictions if p.shadow is not None]
    assert shadows == pytest.approx(want_shadow.tolist(), abs=1e-6)

    monitor.export()
    report = evaluate_models(data, DEFAULT_MODEL_DIR)
    for product, block in report["per_product"].items():
        for variant, role in (("baseline", "active"), ("ml", "shadow")):
            want = block["models"][variant]
            assert _gauge("labelled", variant, product, role) == block["rows"]
            assert _gauge("prevalence", variant, product, role) == pytest.approx(
                block["prevalence"]
            )
            live = _gauge("pr_auc", variant, product, role)
            assert live is not None and abs(live - want["pr_auc"]) <= 0.02
            assert _gauge("brier", variant, product, role) == pytest.approx(want["brier"], abs=1e-4)
        psi = REGISTRY.get_sample_value(
            "volatility_feature_psi",
            {"feature": "rv_60s", "product": product, "model_variant": "baseline"},
        )
        assert psi is not None and psi >= 0.0
        # Beside it, the drift the training sessions span, as the model carries it.
        bound = REGISTRY.get_sample_value(
            "volatility_feature_psi_training_max",
            {"feature": "rv_60s", "product": product, "model_variant": "baseline"},
        )
        reference = monitor.drift.references[product]
        assert bound == reference.window_psi_max[FEATURE_NAMES.index("rv_60s")] > 0.0
