"""Training, labelling and evaluation of the volatility models."""
