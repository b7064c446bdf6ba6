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

/// `/docs`: our header (see [`super::docs_page`]) and Swagger UI on the merged
/// document; the header's figures go between the head and the tail.
const SWAGGER_HTML_HEAD: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>FrameX - Swagger UI</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
<style>
#framex-header { max-width: 1460px; margin: 0 auto; padding: 16px 20px 0; font-family: sans-serif; color: #1f2a37; }
#framex-header h3 { font-size: 14px; margin: 14px 0 6px; }
.fx-status { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; }
.fx-label { font-weight: bold; }
.fx-failed { color: #b42318; } .fx-loaded { color: #067647; }
.fx-actions { margin-top: 10px; display: flex; gap: 8px; flex-wrap: wrap; }
.fx-action { padding: 5px 12px; border: 1px solid #d0d5dd; border-radius: 4px; background: #fff; color: #1f2a37; text-decoration: none; font-size: 13px; }
.fx-action-primary { background: #175cd3; color: #fff; } .fx-action-success { background: #079455; color: #fff; }
.fx-action-warning { background: #dc6803; color: #fff; } .fx-action-danger { background: #d92d20; color: #fff; }
.fx-upstreams, .fx-migration { list-style: none; padding: 0; margin: 0; font-size: 13px; }
.fx-upstreams li, .fx-migration li { display: flex; gap: 10px; padding: 2px 0; }
.fx-health-healthy { color: #067647; } .fx-health-unhealthy, .fx-health-not-discovered { color: #b42318; }
.fx-cards { display: flex; flex-wrap: wrap; gap: 10px; }
.fx-card { border: 1px solid #e6eaf0; border-radius: 6px; padding: 8px 12px; min-width: 220px; font-size: 13px; }
.fx-card-name { font-weight: bold; } .fx-card-meta { color: #475467; margin-top: 4px; }
.fx-card-update { color: #b54708; font-weight: bold; }
.fx-action-form { margin-top: 8px; padding: 8px 12px; border: 1px solid #d0d5dd; border-radius: 6px; font-size: 13px; display: flex; flex-wrap: wrap; gap: 8px; align-items: end; }
.fx-action-form label { display: flex; flex-direction: column; gap: 2px; }
.fx-action-result { margin-top: 8px; font-size: 13px; }
.fx-action-body { max-height: 240px; overflow: auto; background: #f8fafc; border: 1px solid #e6eaf0; padding: 8px; white-space: pre-wrap; word-break: break-word; }
</style>
</head>
<body>
<div id="framex-header"></div>
<script type="application/json" id="framex-overview">"##;

/// `/docs`, after the JSON island.
const SWAGGER_HTML_TAIL: &str = r##"</script>
<script src="/docs/framex-header.js"></script>
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

/// A page (`/docs`, `/redoc`): answered under the `[auth]` rules of its path.
/// `overview` is the docs header's JSON island (see [`super::docs_page`]), made safe
/// to sit in a script element; `extra` is HTML put first in the body (the login's
/// "Sign out" button), empty for none.
pub(super) fn page(path: &str, overview: impl FnOnce() -> String, extra: &str) -> Option<HttpResponse> {
    let mut html = match path {
        "/docs" => [SWAGGER_HTML_HEAD, &overview(), SWAGGER_HTML_TAIL].concat(),
        "/redoc" => REDOC_HTML.to_owned(),
        _ => return None,
    };
    if !extra.is_empty() {
        html = html.replacen("<body>\n", &format!("<body>\n{extra}"), 1);
    }
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            // The header shows live figures (upstream health).
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
        "/docs/framex-header.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/framex-docs/header.js"),
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
