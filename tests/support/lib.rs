//! Test support: labs in one line.
