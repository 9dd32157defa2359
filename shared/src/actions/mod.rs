//! Single-shot actions (being written).
