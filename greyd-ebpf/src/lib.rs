//! Will hold greyd's eBPF programs (sk_lookup steering, XDP hard blocks) and the
//! `#[repr(C)]` map types shared with `greyd`; built with the kernel-filter issue.
#![no_std]
