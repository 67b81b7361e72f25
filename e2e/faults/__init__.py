"""Fault injection (marker disruptive): break one thing, name the cause, heal. One by one."""
