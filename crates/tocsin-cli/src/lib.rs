//! Support code shared by the `tocsin-cli` binaries that is not part of the `tocsin` command
//! itself: [`testkit`], the rank-side harness of the test programs (`tocsin-testrank`,
//! `tocsin-soak`). Not an API for applications; the `tocsin` command (`src/main.rs`) does
//! not use it.

pub mod testkit;
