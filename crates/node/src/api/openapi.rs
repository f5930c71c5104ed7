//! `docs/openapi.yaml`: the OpenAPI document of the API, generated from the routes'
//! `#[utoipa::path]` attributes and the types of `demls-api`, and the test that keeps the
//! committed file current. The node serves the committed file (`super::OPENAPI`).

use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use super::routes;

/// What the OpenAPI document says besides the routes.
const DESCRIPTION: &str = "The local control API of a `demls node` (see docs/node.md). It \
listens on loopback by default (`--api 127.0.0.1:PORT`). Every route except `GET /api/health`, \
`POST /api/signin` and the web client (`/`, `/assets/{file}`, see docs/web.md) needs the bearer \
token stored in the node's data directory (`<data-dir>/api-token`, mode 0600): \
`Authorization: Bearer <token>`. The WebSocket `/api/events` also accepts it as the query \
parameter `access_token`, because browsers cannot set headers on WebSockets.\n\n\
Times are Unix milliseconds. Addresses are EIP-55 Ethereum addresses (`0x…`). Proposal ids are \
`0x` and 8 hex digits. Group names are 1 to 64 characters from `a-z 0-9 . _ -`.\n\n\
Errors are an `ErrorBody`, `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`; a \
request body that cannot be read is `invalid` (400).\n\n\
This document is generated from the API's types (crates/api) and the node's routes \
(crates/node/src/api): do not edit it, see docs/web.md.";

/// The document's header, servers and security; the routes add their paths and schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "demls node control API", description = DESCRIPTION),
    servers((url = "http://127.0.0.1:{port}", variables(("port" = (default = "8001", description = "The node's --api port"))))),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
)]
struct ApiDoc;

/// Adds the `bearer` security scheme that [`ApiDoc`] requires.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The OpenAPI document of [`super::router`]: what `docs/openapi.yaml` holds.
fn openapi() -> utoipa::openapi::OpenApi {
    let (open, protected) = routes();
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(open)
        .merge(protected)
        .into_openapi()
}

/// `DEMLS_REGENERATE=1` writes the file instead (see `demls_api::check_generated`).
#[test]
fn the_generated_openapi_document_is_current() {
    let yaml = openapi().to_yaml().expect("the document is YAML");
    if let Err(stale) = demls_api::check_generated("docs/openapi.yaml", &yaml) {
        panic!("{stale}");
    }
}
