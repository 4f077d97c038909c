//! twz-vmm: a KVM monitor that maps persistent objects into unikernel guests.

pub mod images;
