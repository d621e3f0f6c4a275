//! Response head parsing for the client: now one with the server's encoder in
//! [`crate::http::response`], which uses the same field scanner as the request parser.
//!
//! These re-exports keep the client's original paths working (`client::head::Response`, ...).

pub use crate::http::response::{
    parse_content_range, parse_response, ContentRange, Framing, HeadError, Response, MAX_FIELDS,
};
