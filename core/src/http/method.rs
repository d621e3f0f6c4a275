//! Request methods.
//!
//! satchel serves `GET` and `HEAD` only (PROTOCOL.md, "Requests the server accepts"):
//!
//! | part | rule | on violation |
//! |---|---|---|
//! | method | `GET`, `HEAD` | any other token: 405 with `Allow: GET, HEAD` (connection may stay open) |
//!
//! Any other syntactically valid token parses as [`Method::Other`], so the server can answer 405
//! rather than 400; the raw token stays available as `Request::method_token`.

/// A request method, as far as satchel cares.
///
/// Methods are case-sensitive (RFC 9110 §9.1): `get` is [`Method::Other`], not [`Method::Get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: transfer the current representation of the target.
    Get,
    /// `HEAD`: as `GET`, but the response carries no content.
    Head,
    /// Any other valid method token; answered 405 with `Allow: GET, HEAD`.
    Other,
}

impl Method {
    /// The value of the `Allow` header sent with a 405 response.
    pub const ALLOW: &'static str = "GET, HEAD";

    /// Classifies a method token (RFC 9110 §9.1, `method = token`).
    ///
    /// The token is assumed to be syntactically valid already (the request parser checks it);
    /// anything that is not exactly `GET` or `HEAD` is [`Method::Other`].
    pub fn from_token(token: &[u8]) -> Self {
        match token {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            _ => Self::Other,
        }
    }

    /// The method's name, or `"OTHER"` for [`Method::Other`] (use the request's raw token to
    /// log what the peer actually sent).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Other => "OTHER",
        }
    }

    /// Whether satchel implements this method (`GET` or `HEAD`).
    pub fn is_supported(&self) -> bool {
        !matches!(self, Self::Other)
    }
}

impl core::fmt::Display for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn known_tokens() {
        assert_eq!(Method::from_token(b"GET"), Method::Get);
        assert_eq!(Method::from_token(b"HEAD"), Method::Head);
        assert!(Method::Get.is_supported());
        assert!(Method::Head.is_supported());
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_token(b"get"), Method::Other);
        assert_eq!(Method::from_token(b"Head"), Method::Other);
    }

    #[test]
    fn other_tokens() {
        for token in [&b"POST"[..], b"PUT", b"DELETE", b"OPTIONS", b"GETX", b"X"] {
            assert_eq!(Method::from_token(token), Method::Other);
        }
        assert!(!Method::Other.is_supported());
        assert_eq!(Method::ALLOW, "GET, HEAD");
    }

    #[test]
    fn names() {
        assert_eq!(Method::Get.as_str(), "GET");
        assert_eq!(Method::Head.as_str(), "HEAD");
        assert_eq!(Method::Other.as_str(), "OTHER");
    }
}
