"""A local HTTPS emulator of the Azure Resource Manager and Entra ID endpoints the portal uses.

Standalone: it never imports Django or portal code. Start it with ``python -m emulator``.
"""
