"""Test support code: fakes and helpers shared by the test suites (never imported by the app)."""
