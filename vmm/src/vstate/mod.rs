//! KVM state: the VM ([`vm`]) and its vCPU ([`vcpu`]).

pub mod vcpu;
pub mod vm;
