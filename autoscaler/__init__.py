"""Spillover node-group autoscaler."""
