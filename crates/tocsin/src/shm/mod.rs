//! shm (being written)
