//! Harness for satchel's end-to-end tests (in progress).
