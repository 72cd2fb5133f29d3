//! Builds what the web component serves, from the files people edit:
//! - the console: `console/console.html` with `console.css` and `console.js` inlined, so the page
//!   is one self-contained document, plus the Content-Security-Policy that allows exactly that
//!   style and that script (their SHA-256) and requests to the page's own origin;
//! - `/openapi.json`: `openapi/openapi.yaml`, the one source of the API's contract, as JSON.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let read = |path: &Path| {
        println!("cargo:rerun-if-changed={}", path.display());
        std::fs::read_to_string(path)
    };

    let html = read(&here.join("console/console.html"))?;
    let style = read(&here.join("console/console.css"))?;
    let script = read(&here.join("console/console.js"))?;
    for placeholder in ["/*STYLE*/", "/*SCRIPT*/"] {
        if html.matches(placeholder).count() != 1 {
            return Err(format!("console.html must hold {placeholder} exactly once").into());
        }
    }
    let page = html
        .replace("/*STYLE*/", &style)
        .replace("/*SCRIPT*/", &script);
    std::fs::write(out.join("console.html"), page)?;
    let policy = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_base64(&script),
        sha256_base64(&style)
    );
    std::fs::write(out.join("console.csp"), policy)?;

    let contract: serde_json::Value =
        serde_yaml::from_str(&read(&here.join("../../openapi/openapi.yaml"))?)?;
    std::fs::write(out.join("openapi.json"), serde_json::to_string(&contract)?)?;
    Ok(())
}

fn sha256_base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}
