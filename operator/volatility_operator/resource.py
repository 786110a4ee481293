"""Names of the ModelVariant custom resource and of what the operator writes on other objects."""

from __future__ import annotations

from typing import Final, Literal, get_args

GROUP: Final = "volatility.dev"
VERSION: Final = "v1alpha1"
KIND: Final = "ModelVariant"
PLURAL: Final = "modelvariants"
SHORT_NAME: Final = "mv"

# The environment variable of the services that selects the model (read by ModelSettings).
VARIANT_ENV: Final = "MODEL_VARIANT"
# Annotations kopf keeps on the resource (handler progress); ours, not kopf's default prefix.
ANNOTATION_PREFIX: Final = GROUP

Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "RolledBack"]
PHASES: Final[tuple[Phase, ...]] = get_args(Phase)
ConditionType = Literal["Ready", "Progressing", "Degraded"]
CONDITION_TYPES: Final[tuple[ConditionType, ...]] = get_args(ConditionType)
Role = Literal["api", "consumer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
Trigger = Literal["manual", "automatic"]
TRIGGERS: Final[tuple[Trigger, ...]] = get_args(Trigger)
Signal = Literal["apiLatencyP95Seconds", "errorRatio", "consumerLag", "liveQualityGap"]
SIGNALS: Final[tuple[Signal, ...]] = get_args(Signal)

# Reasons, as they appear in conditions, history and Events.
REASON_SWITCHING: Final = "VariantSwitching"
REASON_READY: Final = "VariantServing"
REASON_DEADLINE: Final = "ProgressDeadlineExceeded"
REASON_AUTOMATIC: Final = "AutomaticRollback"
REASON_MANUAL: Final = "SpecChanged"
REASON_REVERTED: Final = "Reverted"

HISTORY_LIMIT: Final = 10
