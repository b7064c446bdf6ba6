//! The login's own page (`GET /auth/logout`: signed out, sign in again) and the
//! "Sign out" button added to Swagger UI while the login is on.

use actix_web::http::header;
use actix_web::HttpResponse;

/// `GET /auth/logout`: the session has ended; a link logs in again.
const SIGNED_OUT_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signed out - FrameX</title>
<link rel="icon" href="data:,">
<style>
body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: #f6f8fb;
       color: #1f2a37; font-family: ui-sans-serif, system-ui, sans-serif; }
main { text-align: center; }
a { display: inline-block; padding: 8px 14px; border-radius: 8px; background: #4f7fd1; color: #fff;
    text-decoration: none; font-weight: 600; }
</style>
</head>
<body>
<main>
<p>FrameX Docs</p>
<h1 id="signed-out">Signed out</h1>
<p>Your FrameX session has ended.</p>
<a id="sign-in" href="/docs">Sign in again</a>
</main>
</body>
</html>
"##;

/// The "Sign out" form put at the top of Swagger UI (a `POST`, so that a link on
/// another site cannot end the session).
pub const SIGN_OUT_FORM: &str = r#"<form id="docs-logout-form" method="post" action="/auth/logout" style="position:fixed;top:8px;right:12px;z-index:10;margin:0"><button id="docs-logout" type="submit" style="padding:6px 12px;border:1px solid #4f7fd1;border-radius:6px;background:#fff;color:#4f7fd1;font-weight:600;cursor:pointer">Sign out</button></form>
"#;

/// The signed-out page, never cached.
pub(super) fn signed_out() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(SIGNED_OUT_HTML)
}
