"""lbaas: a load-balancer-as-a-service control plane."""

__version__ = "0.1.0"
