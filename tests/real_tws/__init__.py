"""Helpers of the suite that runs against a real TWS / IB Gateway (tests/test_real_tws.py):
the opt-in switch, the live-account guard, and the checks on docs/handoff.md."""
