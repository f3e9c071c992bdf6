//! See the helper-written matrix.
