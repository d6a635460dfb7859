//! What is specific to the guest's architecture. sipi boots x86-64 guests only.

pub(crate) mod x86_64;
