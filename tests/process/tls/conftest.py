"""The certificates of the TLS process tests."""

from tests.support.certs import pki, server_cert  # noqa: F401  (fixtures of this directory)
