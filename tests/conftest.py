"""Shared pytest configuration: Hypothesis profiles and common fixtures.

Profiles: ``ci`` (derandomized, bounded example counts; selected when the ``CI``
environment variable is set) and ``dev`` (more examples, random). Override with
``HYPOTHESIS_PROFILE=<name>``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=40, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
