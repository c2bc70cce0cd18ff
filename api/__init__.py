"""The REST API under ``/api/v1/``: personal API tokens and Entra bearer tokens, Azure-shaped JIT resources."""
