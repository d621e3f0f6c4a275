//! satchel-server (in progress).

fn main() {}
