//! The page: one HTML file with its script and style, embedded in the
//! binary (no build step, no files to install).

use axum::http::header;
use axum::response::IntoResponse;

const HTML: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// `GET /`: the page, with its style and script inlined (so the token in
/// the URL is all it needs to be served).
pub async fn index() -> impl IntoResponse {
    let body = HTML
        .replacen("/*APP_CSS*/", CSS, 1)
        .replacen("/*APP_JS*/", JS, 1);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}
