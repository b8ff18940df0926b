"""Imported at start-up by Python subprocesses of the tests: installs the network guard."""

import netguard

netguard.install()
