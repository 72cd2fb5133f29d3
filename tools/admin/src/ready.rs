//! `orders-admin ready`: whether the application answers through every link of its providers,
//! asked the way a client would. wadm reports an application `Deployed` once the lattice holds
//! its links, not once the providers took them, so `make run` waits for this as well.
//!
//! Each probe is a request that changes nothing and whose answer only the component behind the
//! path can give:
//! - a `POST` with a malformed body or without a key is refused by its component (400, 401),
//!   not by the HTTP provider (404 `unknown_path`) and not for a missing key configuration
//!   (503 `auth_unavailable`);
//! - billing's and notify's buckets answer (an unknown user asked by the admin is a 404
//!   `unknown_user`, not a 503 `store_unavailable`);
//! - order and notify read the keys billing announced (stream `KEYS`): asked with a valid key
//!   that was never announced, each answers 401, where it answers 503 while its link to the
//!   messaging provider is not in place.

use std::time::Duration;

use anyhow::{bail, Context as _};
use orders_domain::auth::KeySecret;
use orders_domain::UserName;

/// Who a probe shows itself as.
#[derive(Clone, Copy)]
enum Credential {
    /// No `Authorization` header.
    None,
    Admin,
    /// A key with a valid MAC that billing never announced.
    UnannouncedKey,
}

/// One request and the status that proves its path's link works.
struct Probe {
    method: &'static str,
    path: String,
    status: u16,
    credential: Credential,
}

/// A user no one creates: the probes ask about it and never change it.
const PROBE_USER: &str = "readiness-probe";

fn application_probes() -> Vec<Probe> {
    let probe = |method, path: &str, status, credential| Probe {
        method,
        path: path.to_string(),
        status,
        credential,
    };
    use Credential::{Admin, None as NoKey, UnannouncedKey};
    vec![
        probe("POST", "/CreateUser", 400, NoKey),
        probe("POST", "/DepositCash", 401, NoKey),
        probe("POST", "/Order", 401, NoKey),
        probe("POST", "/RotateKey", 401, NoKey),
        probe("POST", "/Refund", 401, NoKey),
        probe("GET", "/Balance?user=readiness-probe", 404, Admin),
        probe("GET", "/Statement?user=readiness-probe", 404, Admin),
        probe("GET", "/List?user=readiness-probe", 200, Admin),
        probe("GET", "/OrderStatus?order_id=readiness-probe", 404, Admin),
        probe("GET", "/DeadLetters", 200, Admin),
        probe("GET", "/", 200, Admin),
        probe("GET", "/openapi.json", 200, Admin),
        probe("POST", "/Order", 401, UnannouncedKey),
        probe("GET", "/List?user=readiness-probe", 401, UnannouncedKey),
    ]
}

/// A probe of a path only some lattices serve: `GET /Hello 200`.
fn parse_extra(text: &str) -> anyhow::Result<Probe> {
    let mut words = text.split_whitespace();
    let (Some(method), Some(path), Some(status), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        bail!("a probe is `METHOD PATH STATUS`, e.g. `GET /Hello 200`: {text:?}");
    };
    let method = match method {
        "GET" => "GET",
        "POST" => "POST",
        other => bail!("a probe's method is GET or POST, not {other}"),
    };
    Ok(Probe {
        method,
        path: path.to_string(),
        status: status.parse().context("a probe's status is a number")?,
        credential: Credential::Admin,
    })
}

/// Every probe against every listener; the first that fails is the error.
pub async fn check(
    listeners: &str,
    admin_token: &str,
    api_key_secret: &str,
    extra: &[String],
) -> anyhow::Result<()> {
    let user = UserName::parse(PROBE_USER).expect("the probe user is a valid name");
    let unannounced = KeySecret::from_hex(api_key_secret.trim())
        .map_err(|e| anyhow::anyhow!("the API key secret: {e}"))?
        .issue(&user, [0; 16])
        .key;
    let mut probes = application_probes();
    for text in extra {
        probes.push(parse_extra(text)?);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    for base in listeners
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        for probe in &probes {
            let url = format!("{base}{}", probe.path);
            let mut request = match probe.method {
                "POST" => http.post(&url).body("{"),
                _ => http.get(&url),
            };
            let token = match probe.credential {
                Credential::None => None,
                Credential::Admin => Some(admin_token.trim()),
                Credential::UnannouncedKey => Some(unannounced.as_str()),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("{} {url}", probe.method))?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if status != probe.status || body.contains(r#""error":"unknown_path""#) {
                let shown: String = body.chars().take(200).collect();
                bail!("{base}: {} {}: {status} {shown}", probe.method, probe.path);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_probe_names_its_method_path_and_status() {
        let probe = parse_extra("GET /Hello 200").unwrap();
        assert_eq!(
            (probe.method, probe.path.as_str(), probe.status),
            ("GET", "/Hello", 200)
        );
        assert!(parse_extra("GET /Hello").is_err());
        assert!(parse_extra("DELETE /Hello 200").is_err());
        assert!(parse_extra("GET /Hello 200 extra").is_err());
    }
}
