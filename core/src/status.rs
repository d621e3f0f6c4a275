//! Response status codes (RFC 9110 §15) and their reason phrases.

/// An HTTP status code, `100..=999` in the wire form (RFC 9110 §15).
///
/// The constants cover every status satchel sends; [`StatusCode::from_u16`] builds any other
/// three-digit code (a client reads codes it does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 200 OK (RFC 9110 §15.3.1).
    pub const OK: Self = Self(200);
    /// 206 Partial Content (RFC 9110 §15.3.7).
    pub const PARTIAL_CONTENT: Self = Self(206);
    /// 301 Moved Permanently (RFC 9110 §15.4.2).
    pub const MOVED_PERMANENTLY: Self = Self(301);
    /// 302 Found (RFC 9110 §15.4.3).
    pub const FOUND: Self = Self(302);
    /// 304 Not Modified (RFC 9110 §15.4.5).
    pub const NOT_MODIFIED: Self = Self(304);
    /// 307 Temporary Redirect (RFC 9110 §15.4.8).
    pub const TEMPORARY_REDIRECT: Self = Self(307);
    /// 308 Permanent Redirect (RFC 9110 §15.4.9).
    pub const PERMANENT_REDIRECT: Self = Self(308);
    /// 400 Bad Request (RFC 9110 §15.5.1).
    pub const BAD_REQUEST: Self = Self(400);
    /// 403 Forbidden (RFC 9110 §15.5.4).
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found (RFC 9110 §15.5.5).
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed (RFC 9110 §15.5.6).
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 408 Request Timeout (RFC 9110 §15.5.9).
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 410 Gone (RFC 9110 §15.5.11).
    pub const GONE: Self = Self(410);
    /// 412 Precondition Failed (RFC 9110 §15.5.13).
    pub const PRECONDITION_FAILED: Self = Self(412);
    /// 414 URI Too Long (RFC 9110 §15.5.15).
    pub const URI_TOO_LONG: Self = Self(414);
    /// 416 Range Not Satisfiable (RFC 9110 §15.5.17).
    pub const RANGE_NOT_SATISFIABLE: Self = Self(416);
    /// 417 Expectation Failed (RFC 9110 §15.5.18).
    pub const EXPECTATION_FAILED: Self = Self(417);
    /// 431 Request Header Fields Too Large (RFC 6585 §5).
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Self = Self(431);
    /// 500 Internal Server Error (RFC 9110 §15.6.1).
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented (RFC 9110 §15.6.2).
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 502 Bad Gateway (RFC 9110 §15.6.3).
    pub const BAD_GATEWAY: Self = Self(502);
    /// 503 Service Unavailable (RFC 9110 §15.6.4).
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 504 Gateway Timeout (RFC 9110 §15.6.5).
    pub const GATEWAY_TIMEOUT: Self = Self(504);
    /// 505 HTTP Version Not Supported (RFC 9110 §15.6.6).
    pub const HTTP_VERSION_NOT_SUPPORTED: Self = Self(505);

    /// The code for `code`, or `None` outside the three-digit range `100..=999`
    /// (RFC 9110 §15: `status-code = 3DIGIT`, first digit 1-5 defined; others kept opaque).
    pub const fn from_u16(code: u16) -> Option<Self> {
        if code >= 100 && code <= 999 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// The three ASCII digits of the code, as sent on the status line.
    pub const fn digits(self) -> [u8; 3] {
        // `self.0 <= 999` by construction, so each digit is 0..=9.
        let c = self.0;
        [
            b'0' + (c / 100 % 10) as u8,
            b'0' + (c / 10 % 10) as u8,
            b'0' + (c % 10) as u8,
        ]
    }

    /// The reason phrase RFC 9110 §15 gives this code; a code it does not name gets its class's
    /// generic phrase (`"Client Error"` for an unknown 4xx), since the phrase is informational
    /// (RFC 9112 §4: "A client SHOULD ignore the reason-phrase content").
    pub const fn reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            101 => "Switching Protocols",
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            203 => "Non-Authoritative Information",
            204 => "No Content",
            205 => "Reset Content",
            206 => "Partial Content",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Found",
            303 => "See Other",
            304 => "Not Modified",
            305 => "Use Proxy",
            307 => "Temporary Redirect",
            308 => "Permanent Redirect",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            409 => "Conflict",
            410 => "Gone",
            411 => "Length Required",
            412 => "Precondition Failed",
            413 => "Content Too Large",
            414 => "URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Range Not Satisfiable",
            417 => "Expectation Failed",
            421 => "Misdirected Request",
            422 => "Unprocessable Content",
            426 => "Upgrade Required",
            428 => "Precondition Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            505 => "HTTP Version Not Supported",
            _ => match self.0 / 100 {
                1 => "Informational",
                2 => "Success",
                3 => "Redirection",
                4 => "Client Error",
                5 => "Server Error",
                _ => "Unknown",
            },
        }
    }

    /// Whether this is a 1xx code.
    pub const fn is_informational(self) -> bool {
        self.0 < 200
    }

    /// Whether this is a 2xx code.
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// Whether this is a 3xx code.
    pub const fn is_redirection(self) -> bool {
        self.0 >= 300 && self.0 < 400
    }

    /// Whether this is a client (4xx) or server (5xx) error.
    pub const fn is_error(self) -> bool {
        self.0 >= 400 && self.0 < 600
    }
}

/// Compares with a bare code, so tests and callers can write `status == 404`.
impl PartialEq<u16> for StatusCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl From<StatusCode> for u16 {
    fn from(status: StatusCode) -> Self {
        status.0
    }
}

impl core::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::StatusCode;

    #[test]
    fn reasons_follow_rfc_9110() {
        assert_eq!(StatusCode::OK.reason(), "OK");
        assert_eq!(StatusCode::PARTIAL_CONTENT.reason(), "Partial Content");
        assert_eq!(
            StatusCode::RANGE_NOT_SATISFIABLE.reason(),
            "Range Not Satisfiable"
        );
        assert_eq!(StatusCode::URI_TOO_LONG.reason(), "URI Too Long");
        assert_eq!(StatusCode::BAD_GATEWAY.reason(), "Bad Gateway");
        assert_eq!(StatusCode::GATEWAY_TIMEOUT.reason(), "Gateway Timeout");
        assert_eq!(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.reason(),
            "Request Header Fields Too Large"
        );
        assert_eq!(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED.reason(),
            "HTTP Version Not Supported"
        );
    }

    #[test]
    fn unknown_codes_get_class_phrase() {
        assert_eq!(
            StatusCode::from_u16(499).map(StatusCode::reason),
            Some("Client Error")
        );
        assert_eq!(
            StatusCode::from_u16(799).map(StatusCode::reason),
            Some("Unknown")
        );
    }

    #[test]
    fn from_u16_bounds() {
        assert_eq!(StatusCode::from_u16(99), None);
        assert_eq!(StatusCode::from_u16(1000), None);
        assert_eq!(StatusCode::from_u16(100).map(StatusCode::as_u16), Some(100));
        assert_eq!(
            StatusCode::from_u16(999).map(StatusCode::digits),
            Some(*b"999")
        );
    }

    #[test]
    fn digits_and_classes() {
        assert_eq!(StatusCode::NOT_MODIFIED.digits(), *b"304");
        assert_eq!(StatusCode::OK.digits(), *b"200");
        assert!(StatusCode::NOT_FOUND.is_error());
        assert!(StatusCode::SERVICE_UNAVAILABLE.is_error());
        assert!(!StatusCode::NOT_MODIFIED.is_error());
        assert!(StatusCode::NOT_MODIFIED.is_redirection());
        assert!(StatusCode::PARTIAL_CONTENT.is_success());
        assert!(StatusCode::from_u16(100).is_some_and(StatusCode::is_informational));
        assert!(!StatusCode::OK.is_informational());
    }

    #[test]
    fn display_is_code_and_reason() {
        use std::string::ToString;
        assert_eq!(StatusCode::NOT_FOUND.to_string(), "404 Not Found");
    }
}
