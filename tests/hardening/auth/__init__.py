"""Authentication, authorisation, rate limits and connection limits."""
