"""Reach policy: platform and corp caps, quiet hours, opt-out, content checks, complaints."""
