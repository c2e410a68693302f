"""Acquisition (获客): channel codes, welcome messages, group codes, attribution and channel funnels."""
