//! satchel-client (in progress).

fn main() {}
