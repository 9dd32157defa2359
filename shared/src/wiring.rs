//! Building providers from configuration (being written).
