"""One module per capability, all behind the contract in `tools.base`."""
