"""Where the nodes come from: host setup, the lab images and the VM box (Packer), Vagrant, the
lab's container flags, and the preflight checks of the lab and the VM providers. Imports
calicolab.core and calicolab.stack."""
