"""The Azure Resource Manager side of the emulator: one blueprint, a case-insensitive router, one module per
resource provider."""
