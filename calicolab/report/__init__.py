"""What a run leaves behind: the lifecycle JUnit and timings (junit), failure artifacts from the
nodes, and the scan for private key material. Imports calicolab.core and calicolab.stack."""
