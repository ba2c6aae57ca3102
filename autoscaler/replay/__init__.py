"""``spillover-autoscaler replay``: replay a recorded or imported trace in virtual time.

The replay drives the same pure functions as the live services (``extender.policy``,
``autoscaler.planner``, ``extender.deletion_cost``) through the ``simulated`` provider.
"""
