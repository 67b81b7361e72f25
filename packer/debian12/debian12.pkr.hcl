# The Debian 12 box for the libvirt provider: a disk image the project builds natively
# (calicolab/infra/vm_debian.py: mmdebstrap, no installer) booted once by Packer's qemu builder,
# which checks what was baked in, and turned into a libvirt box by the vagrant post-processor.

variable "disk_image" {
  type        = string
  description = "qcow2 made by invoke box (mmdebstrap rootfs, GRUB installed at its first boot)."
}

variable "disk_sha256" {
  type        = string
  description = "sha256 of disk_image, so Packer verifies the file it boots."
}

variable "disk_size" {
  type        = string
  description = "Virtual size of disk_image (Packer 1.6.6 grows the disk to 40960M otherwise)."
}

variable "accelerator" {
  type        = string
  default     = "tcg"
  description = "kvm where it works, tcg (software emulation) otherwise: invoke box probes it."
}

variable "cpu_model" {
  type        = string
  default     = "qemu64"
  description = "qemu64 under TCG; host under KVM."
}

variable "ssh_private_key_file" {
  type        = string
  description = "Vagrant's insecure private key (shipped with Vagrant), whose public half the image holds."
}

variable "output_dir" {
  type = string
}

variable "box_file" {
  type = string
}

source "qemu" "debian12" {
  disk_image           = true
  iso_url              = var.disk_image
  iso_checksum         = "sha256:${var.disk_sha256}"
  disk_size            = var.disk_size
  skip_resize_disk     = true
  skip_compaction      = true
  format               = "qcow2"
  accelerator          = var.accelerator
  qemuargs             = [["-cpu", var.cpu_model]]
  cpus                 = 1
  memory               = 1024
  disk_interface       = "virtio"
  net_device           = "virtio-net"
  headless             = true
  boot_wait            = "1s"
  communicator         = "ssh"
  ssh_username         = "vagrant"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "10m"
  shutdown_command     = "sudo systemctl poweroff"
  shutdown_timeout     = "5m"
  output_directory     = var.output_dir
  vm_name              = "debian12.qcow2"
}

build {
  sources = ["source.qemu.debian12"]

  provisioner "shell" {
    script          = "${path.root}/scripts/check-baked.sh"
    execute_command = "sudo sh -eu '{{ .Path }}'"
  }

  post-processor "vagrant" {
    output               = var.box_file
    compression_level    = 1
    vagrantfile_template = "${path.root}/box.Vagrantfile"
  }
}
