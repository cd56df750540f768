"""Test and benchmark support: synthetic scenes, test doubles, environment checks. Not installed."""
