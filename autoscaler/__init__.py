"""Spillover node-group autoscaler.

Pure core: ``nodegroup`` (groups and settings from YAML or a ConfigMap), ``costs`` (ECS versus
ECI), ``kernels`` (numba) and ``kernels_ref`` (their plain-Python references), ``expanders`` and
``planner``; ``forecast`` predicts demand.  Adapters: ``providers``, ``controller``, ``cli``.
"""

__all__: list[str] = []
