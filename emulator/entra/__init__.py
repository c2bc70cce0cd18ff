"""The emulated Entra ID (OpenID Connect, OAuth 2.0 token endpoint) and the Graph calls the portal makes."""
from emulator.entra.endpoints import create_entra_blueprint

__all__ = ["create_entra_blueprint"]
