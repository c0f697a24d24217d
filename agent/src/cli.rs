//! The `shipshape` command line.
