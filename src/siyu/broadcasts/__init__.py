"""Broadcasts: mass messages to customers and groups, personal broadcasts, Moments."""
