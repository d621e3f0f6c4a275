//! (in progress) smoltcp driver
