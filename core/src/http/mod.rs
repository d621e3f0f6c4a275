//! HTTP/1.1 subset: request head parser, response head encoder, ranges, conditionals, dates.
//!
//! Views borrow the caller's buffer; encoders follow `encoded_len()` + `encode(&mut [u8])`.

pub mod conditional;
pub mod date;
pub mod digest;
pub mod encoding;
pub mod etag;
pub mod method;
pub mod range;
pub mod request;
pub mod response;
pub(crate) mod scan;
/// Status codes live at the bottom of the crate (`crate::status`), so `path` can name them.
pub use crate::status;

pub(crate) use scan::{trim_ows, trim_ows_start};
