//! Every form on the pages carries a token that must equal a cookie set with the page
//! (double submit). Another site can make a browser post to us, but it can neither read the
//! token nor, the cookie being `SameSite=Strict`, have the browser send the cookie along: so
//! it cannot sign a household in to an account of its choosing (login CSRF), and cannot act
//! for a signed-in one. The JSON API needs none of this: it takes tokens in a header, which
//! a browser never adds by itself.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::crypto::constant_time_eq;
use crate::state::AppState;

pub const COOKIE: &str = "varsel_csrf";
const FIELD: &str = "csrf";

/// A new token and the `Set-Cookie` that gives it to the browser.
fn issue(secure: bool) -> (String, Option<HeaderValue>) {
    let t = crate::crypto::hex_encode(&crate::crypto::random_bytes::<16>());
    let set = HeaderValue::from_str(&format!(
        "{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    ))
    .ok();
    (t, set)
}

/// The browser's token, when it sent a well-formed one: what the page puts in its forms.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers).filter(|t| well_formed(t))
}

fn well_formed(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    super::pages::cookie(headers, COOKIE)
}

/// The form's token field; tokens are hex, so they appear in the body as they are.
fn field(body: &[u8]) -> Option<&[u8]> {
    body.split(|b| *b == b'&')
        .filter_map(|kv| {
            let at = kv.iter().position(|b| *b == b'=')?;
            Some((&kv[..at], &kv[at + 1..]))
        })
        .find(|(k, _)| *k == FIELD.as_bytes())
        .map(|(_, v)| v)
}

/// On the pages: a GET without a token gets one (handed to the page as if the browser had
/// sent it, and set on the answer); a POST whose form lacks the cookie's token is refused.
/// The body passes on as it came.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        if token(req.headers()).is_some() {
            return next.run(req).await;
        }
        let (t, set) = issue(state.config.https());
        let mut req = req;
        if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={t}")) {
            req.headers_mut().append(header::COOKIE, v);
        }
        let mut res = next.run(req).await;
        if let Some(set) = set {
            res.headers_mut().append(header::SET_COOKIE, set);
        }
        return res;
    }
    let expected = token(req.headers()).map(str::to_string);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::edge::SMALL_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response();
    };
    let matches = expected
        .zip(field(&bytes))
        .is_some_and(|(c, f)| constant_time_eq(c.as_bytes(), f));
    if !matches {
        return expired();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The answer to a form without its token: most often a page left open across a restart of
/// the browser (the cookie is a session cookie), so the way on is to load it again.
fn expired() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Varsel</title></head><body>\
             <p lang=\"sv\">Formuläret har gått ut. Gå tillbaka, ladda om sidan och försök igen.</p>\
             <p lang=\"nb\">Skjemaet er utløpt. Gå tilbake, last inn siden på nytt og prøv igjen.</p>\
             <p lang=\"en\">This form has expired. Go back, reload the page and try again.</p>\
             </body></html>",
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_field_is_found_among_others() {
        assert_eq!(
            field(b"a=1&csrf=abc&b=2"),
            Some(&b"abc"[..]),
            "in the middle"
        );
        assert_eq!(field(b"csrf="), Some(&b""[..]));
        assert_eq!(field(b"xcsrf=abc"), None);
        assert_eq!(field(b""), None);
    }

    #[test]
    fn a_new_token_comes_with_its_cookie_and_only_a_good_one_counts() {
        let (t, set) = issue(true);
        assert!(well_formed(&t));
        let set = set.unwrap();
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure")
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("lang=sv; {COOKIE}={t}")).unwrap(),
        );
        assert_eq!(token(&h), Some(t.as_str()));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("varsel_csrf=<script>"),
        );
        assert_eq!(token(&h), None);
    }

    proptest! {
        #[test]
        fn any_body_is_read_without_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = field(&body);
        }
    }
}
