"""A local OpenID Connect provider — FOR DEVELOPMENT AND TESTS ONLY, never production.

It stands in for the district's identity provider in the test suite, on the devnet and behind
``trustledger dev-idp``. Its ``POST /token`` hands a signed token to anyone for any identifier, so
the service (:mod:`api`) never imports this package; only the CLI and the tests do.
"""

from devidp.http import RunningIdp, create_idp_app, serve_in_thread
from devidp.provider import LocalIdentityProvider

__all__ = ["LocalIdentityProvider", "RunningIdp", "create_idp_app", "serve_in_thread"]
