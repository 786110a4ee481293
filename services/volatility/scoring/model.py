"""An ONNX model loaded once, checked against the feature contract, scoring batches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from volatility.scoring.contract import (
    INPUT_NAME,
    PROBABILITIES,
    ModelContract,
    ModelContractError,
    model_path,
)

if TYPE_CHECKING:
    from volatility.names import VariantName


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    contract: ModelContract


class Model:
    """A scoring session; thread-safe (onnxruntime sessions allow concurrent ``run``)."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort  # heavy: imported only where a model is loaded

        data = path.read_bytes()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session: Any = ort.InferenceSession(
            data, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        meta = self._session.get_modelmeta().custom_metadata_map
        contract = ModelContract.from_metadata(meta, source=str(path))
        contract.check_features(source=str(path))
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if inputs != [INPUT_NAME] or PROBABILITIES not in outputs:
            raise ModelContractError(
                f"{path}: expected input {INPUT_NAME!r} and output {PROBABILITIES!r}, "
                f"found inputs {inputs} and outputs {outputs}"
            )
        self.info = ModelInfo(path, hashlib.sha256(data).hexdigest(), contract)
        self._outputs = [PROBABILITIES]

    @classmethod
    def load(cls, model_dir: Path, variant: VariantName) -> Model:
        path = model_path(model_dir, variant)
        if not path.is_file():
            raise FileNotFoundError(f"no {variant} model at {path}")
        return cls(path)

    @property
    def contract(self) -> ModelContract:
        return self.info.contract

    def score(self, features: np.ndarray) -> np.ndarray:
        """Spike probabilities for a float32 array of shape [n, n_features]."""
        (probabilities,) = self._session.run(self._outputs, {INPUT_NAME: features})
        return np.asarray(probabilities)[:, 1]
