"""Spillover placement: the kube-scheduler extender that decides ECS node or ECI virtual node.

The pure core (``quantity``, ``model``, ``selectors``, ``policy``, ``ledger``, ``snapshot``,
``deletion_cost``, ``verbs``) is shared with the autoscaler and the replay; adapters (``app``,
``kube``, ``cli``) are the only modules that touch HTTP or the Kubernetes API.
"""
