"""Running on Kubernetes: which executor runs which job (executors.py) and where a use case's
training step is placed (placement.py: GPU limits, tolerations, node selector)."""
