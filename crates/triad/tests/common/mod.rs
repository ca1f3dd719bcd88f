//! Helpers shared by the integration tests (each test binary includes the ones it needs).

#![allow(dead_code, unreachable_pub)] // each binary uses its own share

pub mod procs;
