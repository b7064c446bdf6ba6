//! The docs pages: Swagger UI at `/docs`, ReDoc at `/redoc`, both reading
//! `/api/v1/openapi.json`, from the npm packages `swagger-ui-dist` and `redoc`
//! vendored under `assets/` (pinned in `assets/update`, which fetches them with
//! `npm pack`; their licences are kept beside them) and built into the binary: no CDN,
//! no network at run time.
//!
//! Swagger UI's "Authorize" holds the key of our `[auth]` rules: the merged document
//! declares them as the `apiKey` scheme `FrameXKey` (header `Authorization`, sent as
//! it is, as FrameX expects).

use actix_web::http::header;
use actix_web::HttpResponse;

/// `/docs`: Swagger UI on the merged document.
const SWAGGER_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FrameX - Swagger UI</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  persistAuthorization: true,
  validatorUrl: null
});
</script>
</body>
</html>
"##;

/// `/redoc`: ReDoc on the merged document.
const REDOC_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FrameX - ReDoc</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="/api/v1/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"##;

/// The HTML of a page (`/docs`, `/redoc`).
fn html(path: &str) -> Option<&'static str> {
    match path {
        "/docs" => Some(SWAGGER_HTML),
        "/redoc" => Some(REDOC_HTML),
        _ => None,
    }
}

/// A page (`/docs`, `/redoc`): answered under the `[auth]` rules of its path.
pub(super) fn page(path: &str) -> Option<HttpResponse> {
    let html = html(path)?;
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(html),
    )
}

/// A page with `extra` HTML at the start of its body (the login's "Sign out"
/// button), never cached (it is for one signed-in user).
pub(super) fn page_with(path: &str, extra: &str) -> Option<HttpResponse> {
    let html = html(path)?.replacen("<body>\n", &format!("<body>\n{extra}"), 1);
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
    )
}

/// A vendored file of the pages, by its path: public code, open whatever the rules
/// say (a browser loading a page cannot attach FrameX's raw key to its scripts).
pub(super) fn file(path: &str) -> Option<HttpResponse> {
    let (content_type, body): (&str, &'static [u8]) = match path {
        "/docs/swagger-ui-bundle.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
        ),
        "/docs/swagger-ui.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
        ),
        "/redoc/redoc.standalone.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/redoc/redoc.standalone.js"),
        ),
        _ => return None,
    };
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(body),
    )
}
