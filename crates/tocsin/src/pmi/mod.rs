//! PMI-1 client (being written).
