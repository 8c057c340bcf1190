"""The two PEP 694 state machines and the records they govern: pure, no I/O."""
