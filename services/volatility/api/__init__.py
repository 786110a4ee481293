"""The HTTP serving API: /predict, the Open Inference Protocol v2, health, version and metrics.

``create_app`` (in :mod:`volatility.api.app`) builds the application; ``volatility serve`` runs it.
"""
