# For Packer 1.7 and newer only: the builders and the vagrant post-processor are plugins.
# Packer 1.6.6 rejects this block, so it is kept out of the template folder. Install them
# once, then build the folder as usual:
#
#   packer init packer/centos7/modern/plugins.pkr.hcl
#   packer build -only=virtualbox-iso.centos7 packer/centos7
#
# (`invoke box` runs the init step itself when it finds Packer 1.7+.)
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    virtualbox = {
      source  = "github.com/hashicorp/virtualbox"
      version = ">= 1.0.0"
    }
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.0.0"
    }
    vagrant = {
      source  = "github.com/hashicorp/vagrant"
      version = ">= 1.0.0"
    }
  }
}
