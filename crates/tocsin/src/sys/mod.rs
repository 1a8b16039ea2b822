//! sys (being written)
