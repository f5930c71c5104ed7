//! The web client: `web/`, built by Vite into `web/dist/` (committed), embedded in the binary
//! and served on `/` and `/assets/*`. These pages need no token: they hold no secret and sign
//! in through the API. Nothing is loaded from anywhere but this node.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The page.
const INDEX: &[u8] = include_bytes!("../../../../web/dist/index.html");

/// Everything under `web/dist/assets/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../web/dist/assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../web/dist/assets/app.css"),
    ),
];

/// Scripts, styles and connections from this node only; no framing.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn serve(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

/// The web client (no token needed; it signs in through the API)
#[utoipa::path(get, path = "/", security(()),
    responses((status = 200, description = "Its page, embedded in the binary.", content_type = "text/html")))]
pub(super) async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

/// The web client's script and style sheet
#[utoipa::path(get, path = "/assets/{file}", security(()),
    params(("file" = String, Path, description = "`app.js` or `app.css`.")),
    responses(
        (status = 200, description = "The file.", content_type = "text/javascript"),
        (status = 404, description = "`not_found`.", body = demls_api::ErrorBody)))]
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, ..)| *name == file) {
        Some((_, content_type, body)) => serve(content_type, body),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no asset {file:?}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_asset_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/dist/assets");
        let mut built: Vec<String> = std::fs::read_dir(dir)
            .expect("web/dist/assets exists")
            .map(|entry| {
                entry
                    .expect("readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        built.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|(n, ..)| (*n).to_owned()).collect();
        served.sort();
        assert_eq!(built, served, "web/dist/assets and web.rs's ASSETS differ");
    }
}
