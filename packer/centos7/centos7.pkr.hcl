# CentOS 7.9.2009 Vagrant box for the VM providers: virtualbox-iso -> virtualbox box,
# qemu -> libvirt box. The same kickstart and scripts serve both.
#
# Packer 1.6.6 (Debian) builds this folder as it is. Packer 1.7+ (plugins split out) needs
# the plugins first: `packer init packer/centos7/modern/plugins.pkr.hcl` (see modern/).
# The required_plugins block lives there because Packer 1.6.6 rejects it.

locals {
  # Anaconda's boot line: pick "Install CentOS 7" (not the media check), text mode, the
  # kickstart from Packer's HTTP server, and the classic ethN names from the start.
  boot_command = [
    "<up><wait><tab><wait>",
    " inst.text inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg net.ifnames=0 biosdevname=0",
    "<enter><wait>",
  ]
  # The kickstart gives vagrant passwordless sudo; Packer logs in with the vagrant password
  # that Vagrant boxes conventionally keep.
  shutdown_command = "sudo -n /sbin/shutdown -P now"
  vbox_base_modifyvm = [
    ["modifyvm", "{{ .Name }}", "--rtcuseutc", "on"],
  ]
  vbox_nat_fix = [["modifyvm", "{{ .Name }}", "--nat-localhostreachable1", "on"]]
}

source "virtualbox-iso" "centos7" {
  guest_os_type        = "RedHat_64"
  iso_urls             = var.iso_urls
  iso_checksum         = var.iso_checksum
  vm_name              = var.vm_name
  output_directory     = "${var.build_dir}/virtualbox"
  cpus                 = var.cpus
  memory               = var.memory
  disk_size            = var.disk_size
  hard_drive_interface = "sata"
  headless             = var.headless
  http_directory       = "${path.root}/http"
  boot_wait            = "10s"
  boot_command         = local.boot_command
  ssh_username         = "vagrant"
  ssh_password         = "vagrant"
  ssh_timeout          = var.ssh_timeout
  shutdown_command     = local.shutdown_command
  # No guest additions: nothing uses them (synced folders are off in the Vagrantfile, the
  # private network is set up over SSH), and building them needed kernel headers and a compiler.
  guest_additions_mode = "disable"
  vboxmanage           = concat(local.vbox_base_modifyvm, var.vbox_nat_localhost_reachable ? local.vbox_nat_fix : [])
}

source "qemu" "centos7" {
  iso_urls         = var.iso_urls
  iso_checksum     = var.iso_checksum
  vm_name          = "${var.vm_name}.qcow2"
  output_directory = "${var.build_dir}/libvirt"
  accelerator      = var.qemu_accelerator
  cpus             = var.cpus
  memory           = var.memory
  disk_size        = var.disk_size
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  format           = "qcow2"
  headless         = var.headless
  http_directory   = "${path.root}/http"
  boot_wait        = "10s"
  boot_command     = local.boot_command
  ssh_username     = "vagrant"
  ssh_password     = "vagrant"
  ssh_timeout      = var.ssh_timeout
  shutdown_command = local.shutdown_command
}

build {
  sources = ["source.virtualbox-iso.centos7", "source.qemu.centos7"]

  # Everything as root through the passwordless sudo the kickstart set up.
  provisioner "shell" {
    execute_command = "sudo -n env {{ .Vars }} bash '{{ .Path }}'"
    scripts         = ["${path.root}/scripts/10-vault-repos.sh"]
  }

  provisioner "shell" {
    execute_command   = "sudo -n env {{ .Vars }} bash '{{ .Path }}'"
    expect_disconnect = true
    scripts = [
      "${path.root}/scripts/80-cleanup.sh",
      "${path.root}/scripts/90-minimize.sh",
    ]
  }

  # One box per provider: virtualbox-iso makes a virtualbox box, qemu a libvirt box.
  post-processor "vagrant" {
    output              = "${var.box_dir}/centos7-{{ .Provider }}.box"
    compression_level   = 6
    keep_input_artifact = false
  }
}
