"""The ModelVariant operator: `kubectl apply` of a ModelVariant rolls the API and the consumer
between model variants, follows the change until the pods serve it, reverts a change that
misses its deadline and rolls back automatically on live signals.

The decisions (`rollout`, `autorollback`, `watchhealth`) are plain code; `handlers` (kopf),
`kube`, `probe` and `prometheus` only translate between them and the outside world.
"""
