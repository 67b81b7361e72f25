# The local lab's node image: a Debian "host" with systemd as PID 1, sshd and a vagrant
# user, built with Packer's docker builder from a base image the project made itself
# (debootstrap + docker import), so no registry is needed. Like a fresh CentOS 7 VM it carries
# no project image: provisioning copies what a node needs over SSH (calicolab/stack/node_images.py).

variable "base_image" {
  type        = string
  description = "Local Debian base image (invoke box makes it with debootstrap)."
}

variable "image_repository" {
  type = string
}

variable "image_tag" {
  type = string
}

variable "inputs_hash" {
  type        = string
  description = "Hash of everything the image is built from; invoke box rebuilds when it changes."
}

variable "vagrant_pubkey" {
  type        = string
  description = "Vagrant's insecure public key (shipped with Vagrant); Vagrant swaps it for a per-node key at first boot."
}

variable "baked_packages" {
  type        = string
  description = "Packages installed at build time so runs need no downloads (the default versions)."
}

source "docker" "lab_node" {
  image  = var.base_image
  pull   = false
  commit = true
  changes = [
    # Packer runs the build with /bin/sh as entrypoint; the node boots systemd instead.
    "ENTRYPOINT [\"/sbin/init\"]",
    "CMD []",
    "ENV container=docker",
    "LABEL calicolab.inputs=${var.inputs_hash}",
  ]
}

build {
  sources = ["source.docker.lab_node"]

  provisioner "file" {
    source      = var.vagrant_pubkey
    destination = "/tmp/vagrant.pub"
  }

  provisioner "file" {
    source      = "${path.root}/scripts/centos-sudoers.sh"
    destination = "/tmp/centos-sudoers.sh"
  }

  provisioner "file" {
    source      = "${path.root}/scripts/centos-units.sh"
    destination = "/tmp/centos-units.sh"
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/node.sh"
    environment_vars = ["BAKED_PACKAGES=${var.baked_packages}"]
  }

  post-processor "docker-tag" {
    repository = var.image_repository
    tag        = [var.image_tag]
  }
}
