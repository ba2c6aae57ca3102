"""``spillover-autoscaler replay``: replay a recorded or imported trace in virtual time.

The replay drives the same pure functions as the live services (``extender.policy``,
``autoscaler.planner``, ``autoscaler.predictive``, ``extender.deletion_cost``) through the
``simulated`` provider.  One variant of a scenario on a trace:
``autoscaler.replay.simulator.simulate(trace, scenario, variant) -> Result``.
"""
