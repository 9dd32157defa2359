//! HTTP layer (being written).
