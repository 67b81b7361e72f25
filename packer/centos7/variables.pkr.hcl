# Inputs of the CentOS 7 box. The ISO is pinned by its published sha256, so any mirror that
# still keeps 7.9.2009 will do: Packer tries iso_urls in order and checks the checksum.
# (vault.centos.org keeps packages but not reliably the 7.9.2009 ISOs; these mirrors keep
# the centos-vault tree including isos/.)

variable "iso_urls" {
  type = list(string)
  default = [
    "https://mirrors.tuna.tsinghua.edu.cn/centos-vault/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso",
    "https://archive.kernel.org/centos-vault/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso",
    "https://mirrors.aliyun.com/centos-vault/7.9.2009/isos/x86_64/CentOS-7-x86_64-Minimal-2009.iso",
  ]
  description = "Mirrors of CentOS-7-x86_64-Minimal-2009.iso, tried in order."
}

variable "iso_checksum" {
  type        = string
  default     = "sha256:07b94e6b1a0b0260b94c83d6bb76b26bf7a310dc78d7a9c7432809fb9bc6194a"
  description = "Published sha256 of CentOS-7-x86_64-Minimal-2009.iso."
}

variable "box_dir" {
  type        = string
  default     = "output-boxes"
  description = "Where the .box files go (invoke box passes an absolute path)."
}

variable "build_dir" {
  type        = string
  default     = "output"
  description = "Scratch folder for the VM images before they are packed into boxes."
}

variable "vm_name" {
  type    = string
  default = "calicolab-centos7"
}

variable "cpus" {
  type    = number
  default = 2
}

variable "memory" {
  type    = number
  default = 1024
}

variable "disk_size" {
  type        = number
  default     = 10240
  description = "Disk size in MiB."
}

variable "headless" {
  type    = bool
  default = true
}

variable "qemu_accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm on a libvirt runner; tcg works without KVM but takes hours."
}

variable "vbox_nat_localhost_reachable" {
  type        = bool
  default     = false
  description = "VirtualBox 7 blocks NAT access to the host's loopback, where Packer's HTTP server answers; invoke box sets this on VirtualBox 7 (the option does not exist on 6.1)."
}

variable "ssh_timeout" {
  type    = string
  default = "45m"
}
