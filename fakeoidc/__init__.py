"""A fake OpenID Connect identity provider on loopback, for the tests and for trying the
console's "Sign in with …" button locally (`python -m fakeoidc`)."""

from fakeoidc.provider import FakeOIDC, Person

__all__ = ["FakeOIDC", "Person"]
